/**
 * Starts and stops real planterd processes for the benchmark: each on its own
 * temp state dir and socket, stopped by pid (SIGTERM, then SIGKILL if it
 * lingers), with its state dir removed afterwards.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { daemonAnswers } from "../src/rpc/SocketProbe.js"

/** dist/bench/daemon.js → dist/planterd.mjs, the daemon as it ships (the `planterd` bin). */
export const planterdBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "planterd.mjs")
/** The V8 flags of the bin's `#!` line (a 1 MiB young generation; the old generation grown by 20 % over what a collection kept). */
export const planterdNodeFlags = ["--max-semi-space-size=1", "--heap-growing-percent=20"] as const

export interface BenchDaemon {
  readonly pid: number
  readonly stateDir: string
  readonly socketPath: string
  readonly output: () => string
  readonly stop: () => Promise<void>
}

const live = new Set<ChildProcess>()

export const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

export const makeTempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

const socketAnswers = (socketPath: string) => Effect.runPromise(daemonAnswers(socketPath))

/**
 * Starts planterd on a temp state dir, or on `options.stateDir`; the state
 * dir is removed when it stops unless `keepStateDir` says otherwise.
 */
export const startDaemon = async (
  sandboxMode: "disabled" | "permissive" | "enforced",
  options: { readonly stateDir?: string; readonly keepStateDir?: boolean; readonly args?: ReadonlyArray<string> } = {}
): Promise<BenchDaemon> => {
  const stateDir = options.stateDir ?? makeTempDir(`planter-bench-${sandboxMode}-`)
  const socketPath = path.join(stateDir, "planterd.sock")
  const child = spawn(
    process.execPath,
    [
      ...planterdNodeFlags,
      planterdBin,
      "--state-dir",
      stateDir,
      "--socket",
      socketPath,
      "--sandbox-mode",
      sandboxMode,
      ...(options.args ?? [])
    ],
    { stdio: ["ignore", "pipe", "pipe"] }
  )
  live.add(child)
  let output = ""
  child.stdout!.on("data", (data) => (output += data))
  child.stderr!.on("data", (data) => (output += data))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  child.once("exit", () => live.delete(child))

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
      await exited
      clearTimeout(timer)
    }
    if (options.keepStateDir !== true) fs.rmSync(stateDir, { recursive: true, force: true })
  }

  const deadline = Date.now() + 20_000
  while (!(await socketAnswers(socketPath))) {
    if (child.exitCode !== null || child.signalCode !== null) {
      fs.rmSync(stateDir, { recursive: true, force: true })
      throw new Error(`planterd (${sandboxMode}) exited at start:\n${output}`)
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`planterd (${sandboxMode}) did not answer on ${socketPath} within 20 s:\n${output}`)
    }
    await sleep(20)
  }
  return { pid: child.pid!, stateDir, socketPath, output: () => output, stop }
}

/**
 * Last resort when the benchmark dies: signals every daemon it started, by
 * pid. SIGTERM, so each still stops its job trees on the way out.
 * Synchronous so it can run from an `exit` handler.
 */
export const killAllDaemonsNow = () => {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, "SIGTERM")
      } catch {
        // already gone
      }
    }
  }
}
