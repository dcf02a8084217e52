/**
 * Shared by the Linux sandbox suites: finding bubblewrap (and skipping
 * loudly, or failing under PLANTER_REQUIRE_SANDBOX=1, without it), running
 * shell snippets in a cell, and looking at processes from the host.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, it } from "vitest"
import type { TestDaemon } from "./daemon.js"

export const isExecutable = (file: string) => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** `name` as found on this process's PATH, if it is there. */
export const onPath = (name: string) =>
  (process.env.PATH ?? "").split(":").filter((dir) => dir.length > 0)
    .map((dir) => path.join(dir, name)).find(isExecutable)

export const bwrapOnPath = onPath("bwrap")
export const bwrap = bwrapOnPath ?? (isExecutable("/usr/bin/bwrap") ? "/usr/bin/bwrap" : undefined)
export const sandboxRequired = process.env.PLANTER_REQUIRE_SANDBOX === "1"

/**
 * The `describe` for suites that need bubblewrap: without it, registers a
 * failing case when PLANTER_REQUIRE_SANDBOX=1 (CI), else warns loudly and
 * answers `describe.skip`. Call it once per test file, at its top level.
 */
export const sandboxDescribe = (): ReturnType<typeof describe.skipIf> => {
  if (bwrap === undefined && sandboxRequired) {
    describe("sandbox prerequisites", () => {
      it("has bubblewrap installed", () => {
        throw new Error(
          "bubblewrap is required (PLANTER_REQUIRE_SANDBOX=1) but not installed: apt-get install bubblewrap"
        )
      })
    })
  }
  if (bwrap === undefined && !sandboxRequired) {
    console.warn(
      "\n*** SKIPPING the sandbox tests: bubblewrap (bwrap) is not installed. Install it (apt-get install bubblewrap) " +
        "or set PLANTER_REQUIRE_SANDBOX=1 to make its absence fail. ***\n"
    )
  }
  return describe.skipIf(bwrap === undefined)
}

/** The env that lets a test daemon find the same bwrap as the tests (on PATH, or at $PLANTER_BWRAP). */
export const bwrapEnv = (): NodeJS.ProcessEnv => ({ PLANTER_BWRAP: bwrapOnPath !== undefined ? "" : bwrap ?? "" })

/** `planter run CELL --wait [flags] -- sh -c SCRIPT`: the job's exit code and output. */
export const sh = (daemon: TestDaemon, cell: string, script: string, flags: ReadonlyArray<string> = []) =>
  daemon.cli(["run", cell, "--wait", ...flags, "--", "sh", "-c", script])

/** The job id `run --wait` prints first on stderr. */
export const jobIdOf = (stderr: string) => stderr.split("\n")[0]!.trim()

export const createCell = (daemon: TestDaemon, name: string, flags: ReadonlyArray<string> = []) =>
  daemon.json<{ id: string; name: string; dir: string }>(["create", "--name", name, ...flags])

export const DENIED = /Read-only file system|Permission denied/

/**
 * `--read` flags that let a job run this node: none when it lives under the
 * system directories every job sees, else its install dir.
 */
export const nodeReadArgs = (): Array<string> => {
  const nodeBin = fs.realpathSync(process.execPath)
  const shown = ["/usr/", "/bin/", "/sbin/", "/lib", "/etc/", "/opt/"].some((prefix) => nodeBin.startsWith(prefix))
  return shown ? [] : ["--read", path.dirname(path.dirname(nodeBin))]
}

/** `pid` and all its descendants, found by walking /proc (as a user would with ps). */
export const processTree = (root: number) => {
  const children = new Map<number, Array<{ pid: number; comm: string }>>()
  const comms = new Map<number, string>()
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8")
      const close = stat.lastIndexOf(")")
      const comm = stat.slice(stat.indexOf("(") + 1, close)
      const ppid = Number(stat.slice(close + 2).split(" ")[1])
      const pid = Number(name)
      comms.set(pid, comm)
      children.set(ppid, [...(children.get(ppid) ?? []), { pid, comm }])
    } catch {
      // It exited while we looked.
    }
  }
  const tree = [{ pid: root, comm: comms.get(root) ?? "?" }]
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!.pid) ?? []))
  return tree
}

/** The kernel's start time of `pid` (field 22 of /proc/<pid>/stat), or undefined once it is gone. */
export const startTimeOf = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined
  }
}

/**
 * Live processes (zombies excluded) whose command line contains `marker`,
 * found from the host by walking /proc: sees processes in every PID
 * namespace, whatever their session, group or parent.
 */
export const processesWithMarker = (marker: string) => {
  const found: Array<{ pid: number; startTime: string; cmdline: string }> = []
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim()
      if (!cmdline.includes(marker)) continue
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (fields[0] === "Z" || fields[0] === "X") continue
      found.push({ pid: Number(name), startTime: fields[19]!, cmdline })
    } catch {
      // It exited while we looked.
    }
  }
  return found
}
