import * as os from "node:os"
import type { ProcessExit } from "./SandboxRunner.js"

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(os.constants.signals).map(([name, number]) => [number, name as NodeJS.Signals])
)

/**
 * One rule for signals under every backend: a job killed by a signal
 * reports the signal (`signal: "SIGKILL"`, `exit_code: null`), never
 * 128+N as its code. An unsandboxed job's leader is our child, so Node
 * reports its signal itself. bubblewrap's launcher turns its child's
 * death by signal N into exit status 128+N (its own status and its
 * `--json-status-fd` line alike), so for a bubblewrap job a status in
 * 129..128+64 that names a signal is read back as that signal. The one
 * case this misreads: a sandboxed job that itself calls `exit 137` is
 * reported as killed by SIGKILL (documented in the README).
 */
export const fromLauncherStatus = (exit: ProcessExit): ProcessExit => {
  if (exit.signal !== null || exit.code === null || exit.code <= 128 || exit.code > 128 + 64) return exit
  const signal = signalNames.get(exit.code - 128)
  return signal === undefined ? exit : { code: null, signal }
}
