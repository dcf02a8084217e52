import { describe, expect, it } from "@effect/vitest"
import { bubblewrapArgs, LAUNCHER_ENV } from "../../src/services/BubblewrapArgs.js"
import { effectiveNetwork } from "../../src/services/JobSupervisor.js"
import type { SandboxRequest } from "../../src/services/SandboxRunner.js"

const request = (overrides: Partial<SandboxRequest> = {}): SandboxRequest => ({
  jobId: "job-1",
  argv: ["sh", "-c", "echo hi"],
  cwd: "/state/cells/cell-1/sub",
  env: {},
  cellDir: "/state/cells/cell-1",
  tmpDir: "/state/tmp/job-1",
  readPaths: ["/opt/toolchain"],
  network: "allow",
  stdoutPath: "/state/logs/job-x.stdout.log",
  stderrPath: "/state/logs/job-x.stderr.log",
  statusPath: "/state/run/job-x.status",
  ...overrides
})

const systemPaths = [
  { path: "/usr", symlinkTarget: null },
  { path: "/bin", symlinkTarget: "usr/bin" }
]

/** The `--flag a b` triples of an argument list, for order-independent checks. */
const pairsOf = (args: ReadonlyArray<string>, flag: string) =>
  args.flatMap((arg, i) => (arg === flag ? [[args[i + 1], args[i + 2]]] : []))

describe("bubblewrapArgs", () => {
  it("mounts the system read-only, the cell and TMPDIR read-write, grants read-only, and nothing of the state dir", () => {
    const args = bubblewrapArgs(request(), systemPaths)
    expect(pairsOf(args, "--ro-bind")).toEqual([["/usr", "/usr"], ["/opt/toolchain", "/opt/toolchain"]])
    expect(pairsOf(args, "--symlink")).toEqual([["usr/bin", "/bin"]])
    // No writable /tmp: a bind there would turn the mount points of a state
    // dir under /tmp into writable look-alikes. Jobs get TMPDIR instead.
    expect(pairsOf(args, "--bind")).toEqual([
      ["/state/cells/cell-1", "/state/cells/cell-1"],
      ["/state/tmp/job-1", "/state/tmp/job-1"]
    ])
    expect(args.some((arg) => arg === "/state" || arg === "/state/planter.db" || arg === "/state/logs")).toBe(false)
  })

  it("makes the rest of the root read-only, after the writable binds", () => {
    const args = bubblewrapArgs(request(), systemPaths)
    const remount = args.indexOf("--remount-ro")
    expect(args[remount + 1]).toBe("/")
    expect(remount).toBeGreaterThan(args.lastIndexOf("--bind"))
  })

  it("isolates pids, records the job's exit for a later daemon, and ends with the job's argv after --", () => {
    const args = bubblewrapArgs(request(), systemPaths)
    expect(args).toEqual(expect.arrayContaining(["--unshare-pid"]))
    // Not tied to the daemon: a job outlives a daemon crash and is adopted.
    expect(args).not.toContain("--die-with-parent")
    expect(args.slice(args.indexOf("--json-status-fd"), args.indexOf("--json-status-fd") + 2)).toEqual([
      "--json-status-fd",
      "3"
    ])
    expect(args.slice(args.indexOf("--chdir"), args.indexOf("--chdir") + 2)).toEqual([
      "--chdir",
      "/state/cells/cell-1/sub"
    ])
    expect(args.slice(args.lastIndexOf("--"))).toEqual(["--", "sh", "-c", "echo hi"])
  })

  it("adds a network namespace only when network is denied", () => {
    expect(bubblewrapArgs(request(), systemPaths)).not.toContain("--unshare-net")
    expect(bubblewrapArgs(request({ network: "deny" }), systemPaths)).toContain("--unshare-net")
  })
})

describe("privilege and environment", () => {
  it("runs the job in a user namespace with every capability dropped", () => {
    const args = bubblewrapArgs(request(), systemPaths, { disableUserns: true })
    expect(args).toEqual(expect.arrayContaining(["--unshare-user", "--disable-userns"]))
    expect(args.slice(args.indexOf("--cap-drop"), args.indexOf("--cap-drop") + 2)).toEqual(["--cap-drop", "ALL"])
    expect(bubblewrapArgs(request(), systemPaths, { disableUserns: false })).not.toContain("--disable-userns")
  })

  it("sets the job's env inside the sandbox, after clearing what the launcher had", () => {
    const env = { LD_PRELOAD: "/state/cells/cell-1/evil.so", GREETING: "hi there" }
    const args = bubblewrapArgs(request({ env }), systemPaths)
    const clear = args.indexOf("--clearenv")
    expect(clear).toBeGreaterThan(-1)
    expect(pairsOf(args, "--setenv")).toEqual([["LD_PRELOAD", "/state/cells/cell-1/evil.so"], ["GREETING", "hi there"]])
    expect(args.indexOf("--setenv")).toBeGreaterThan(clear)
    expect(args.indexOf("--setenv")).toBeLessThan(args.lastIndexOf("--"))
  })

  it("starts the launcher itself with a fixed environment that loads nothing", () => {
    expect(Object.keys(LAUNCHER_ENV).sort()).toEqual(["LANG", "PATH"])
  })
})

describe("effectiveNetwork", () => {
  it("denies when the cell or the job denies; a job cannot lift its cell's deny", () => {
    expect(effectiveNetwork("allow", null)).toBe("allow")
    expect(effectiveNetwork("allow", "allow")).toBe("allow")
    expect(effectiveNetwork("allow", "deny")).toBe("deny")
    expect(effectiveNetwork("deny", null)).toBe("deny")
    expect(effectiveNetwork("deny", "allow")).toBe("deny")
  })
})
