/**
 * Resource limits (issue 10) across a daemon's life and the sandbox: a
 * limit still holds on a job adopted after a restart (a timeout ends it at
 * its original deadline, from started_at_ms); limits on bubblewrap jobs
 * see the processes inside the PID namespace (a grandchild hog, the
 * process count); each limit kills with its own grace period
 * (--timeout-grace-ms and friends, defaulting to --kill-grace-ms).
 */
import * as fs from "node:fs"
import { afterAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { pidAlive, sleep, startDaemon, stopAllDaemons, waitFor, waitForJobEnd } from "../support/daemon.js"
import { bwrap, bwrapEnv, createCell, nodeReadArgs, sandboxDescribe } from "../support/sandbox.js"

const TIMEOUT = 60_000

// Registers the loud warning (or the failing case under PLANTER_REQUIRE_SANDBOX=1) when bubblewrap is missing.
const describeSandboxed = sandboxDescribe()
const itSandboxed = it.skipIf(bwrap === undefined)

interface JobJson {
  id: string
  status: string
  pid: number | null
  termination_reason: string | null
  started_at_ms: number
  finished_at_ms: number | null
  sandbox: { backend: string }
  usage: { rss_bytes: number; processes: number; log_bytes: number } | null
  limit_detail: { limit: number; observed: number; at_ms: number } | null
}

interface Mode {
  readonly label: string
  readonly sandboxed: boolean
  readonly args: ReadonlyArray<string>
  readonly env: NodeJS.ProcessEnv
}
const COMMON = ["--kill-grace-ms", "300", "--monitor-interval", "200ms"]
const UNSANDBOXED: Mode = {
  label: "unsandboxed",
  sandboxed: false,
  args: ["--sandbox-mode", "disabled", ...COMMON],
  env: {}
}
const BUBBLEWRAP: Mode = {
  label: "bubblewrap",
  sandboxed: true,
  args: ["--sandbox-mode", "enforced", ...COMMON],
  env: bwrapEnv()
}
const itIn = (mode: Mode) => (mode.sandboxed ? itSandboxed : it)

/** Job pids this file started, SIGKILLed at the end if a failure left one behind. */
const leaders: Array<number> = []

afterAll(async () => {
  await stopAllDaemons()
  for (const pid of leaders) {
    try {
      if (pidAlive(pid)) process.kill(pid, "SIGKILL")
    } catch {
      // Gone.
    }
  }
})

const startIn = (mode: Mode, options: { readonly stateDir?: string; readonly args?: ReadonlyArray<string> } = {}) =>
  startDaemon({
    ...(options.stateDir !== undefined ? { stateDir: options.stateDir } : {}),
    args: [...mode.args, ...(options.args ?? [])],
    env: mode.env
  })

const run = async (daemon: TestDaemon, cell: string, args: ReadonlyArray<string>) => {
  const job = await daemon.json<JobJson>(["run", cell, ...args])
  if (job.pid !== null) leaders.push(job.pid)
  return job
}

const finished = (daemon: TestDaemon, id: string, timeoutMs = 20_000) => waitForJobEnd<JobJson>(daemon, id, timeoutMs)

describe("a limit on a job adopted after a restart", () => {
  for (const mode of [UNSANDBOXED, BUBBLEWRAP]) {
    itIn(mode)(`${mode.label}: a timeout still ends the adopted job at its original deadline`, async () => {
      const crashed = await startIn(mode)
      const cell = await createCell(crashed, "adopted")
      // 8 s: room for a restart that takes several seconds on a loaded machine, before the deadline.
      const job = await run(crashed, cell.name, ["--timeout", "8s", "--", "sleep", "60"])
      expect(job.sandbox.backend).toBe(mode.sandboxed ? "bubblewrap" : "none")
      await sleep(1000)
      await crashed.stop("SIGKILL")
      expect(pidAlive(job.pid!), "the job outlived the daemon").toBe(true)

      const next = await startIn(mode, { stateDir: crashed.stateDir })
      expect(await next.json<JobJson>(["job", "status", job.id])).toMatchObject({ status: "running" })
      const ended = await finished(next, job.id)
      expect(ended.termination_reason).toBe("timeout")
      expect(ended.limit_detail!.limit).toBe(8000)
      // Measured from started_at_ms, not from the adoption (about a second later).
      expect(ended.limit_detail!.observed).toBeGreaterThanOrEqual(8000)
      expect(ended.limit_detail!.observed).toBeLessThan(8900)
      expect(ended.limit_detail!.at_ms - ended.started_at_ms).toBe(ended.limit_detail!.observed)
      expect(ended.finished_at_ms! - ended.started_at_ms).toBeGreaterThanOrEqual(8000)
      expect(ended.finished_at_ms! - ended.started_at_ms).toBeLessThan(11000)
      expect(pidAlive(job.pid!), "the adopted job's leader").toBe(false)
    }, TIMEOUT)
  }

  it("unsandboxed: a deadline that passed while no daemon ran ends the job as soon as it is adopted", async () => {
    const crashed = await startIn(UNSANDBOXED)
    const cell = await createCell(crashed, "late")
    const job = await run(crashed, cell.name, ["--timeout", "1s", "--", "sleep", "60"])
    await crashed.stop("SIGKILL")
    await sleep(2000)
    const restarted = Date.now()
    const next = await startIn(UNSANDBOXED, { stateDir: crashed.stateDir })
    const ended = await finished(next, job.id)
    expect(ended.termination_reason).toBe("timeout")
    expect(ended.limit_detail!.limit).toBe(1000)
    expect(ended.limit_detail!.observed).toBeGreaterThanOrEqual(2000)
    expect(ended.finished_at_ms! - restarted).toBeLessThan(5000)
    expect(pidAlive(job.pid!)).toBe(false)
  }, TIMEOUT)

  it("unsandboxed: the log quota still holds on an adopted job (a slow writer)", async () => {
    const crashed = await startIn(UNSANDBOXED)
    const cell = await createCell(crashed, "quota")
    // ~100 KiB a tenth of a second: past 1 MiB a second or so after the restart.
    const writer = "while :; do head -c 102400 /dev/zero | tr '\\0' x; sleep 0.1; done"
    const job = await run(crashed, cell.name, ["--max-log", "3M", "--", "sh", "-c", writer])
    await sleep(500)
    await crashed.stop("SIGKILL")
    const next = await startIn(UNSANDBOXED, { stateDir: crashed.stateDir })
    const ended = await finished(next, job.id)
    expect(ended.termination_reason).toBe("log_quota")
    expect(ended.limit_detail!.limit).toBe(3 * 1024 * 1024)
    expect(ended.limit_detail!.observed).toBeGreaterThan(3 * 1024 * 1024)
    expect(pidAlive(job.pid!)).toBe(false)
  }, TIMEOUT)
})

describeSandboxed("limits on sandboxed (bubblewrap) jobs", () => {
  let daemon: TestDaemon
  let cellName: string
  it("starts an enforcing daemon", async () => {
    daemon = await startIn(BUBBLEWRAP)
    cellName = (await createCell(daemon, "boxed", nodeReadArgs())).name
  }, TIMEOUT)

  it("--max-rss sees a hog that is a grandchild inside the PID namespace", async () => {
    const nodeBin = fs.realpathSync(process.execPath)
    const hog = "const a=[];setInterval(()=>a.push(Buffer.alloc(1e7,1)),50)"
    const job = await run(daemon, cellName, [
      "--max-rss",
      "200M",
      "--",
      "sh",
      "-c",
      `${nodeBin} -e "${hog}"; echo after`
    ])
    expect(job.sandbox.backend).toBe("bubblewrap")
    const ended = await finished(daemon, job.id)
    expect(ended.termination_reason).toBe("memory_limit")
    expect(ended.limit_detail!.limit).toBe(200 * 1024 * 1024)
    expect(ended.limit_detail!.observed).toBeGreaterThan(200 * 1024 * 1024)
  }, TIMEOUT)

  it("usage counts the processes inside the namespace", async () => {
    const job = await run(daemon, cellName, ["--", "sh", "-c", "sleep 30 & sleep 30 & wait"])
    let status: JobJson | undefined
    await waitFor("a usage sample with 3 processes", async () => {
      status = await daemon.json<JobJson>(["job", "status", job.id])
      return status.usage !== null && status.usage.processes >= 3
    })
    expect(status!.usage!.processes).toBeGreaterThanOrEqual(3)
    expect(status!.usage!.rss_bytes).toBeGreaterThan(0)
    await daemon.cli(["job", "kill", job.id])
    expect((await finished(daemon, job.id)).status).toBe("exited")
  }, TIMEOUT)
})

describe("each limit kills with its own grace period", () => {
  // Traps SIGTERM and takes half a second to clean up.
  const TRAPPER = "trap 'echo got TERM; sleep 0.5; echo cleaned; exit 0' TERM; echo ready; while :; do sleep 0.1; done"

  const timedOut = async (graceArgs: ReadonlyArray<string>) => {
    const daemon = await startDaemon({
      args: ["--sandbox-mode", "disabled", "--monitor-interval", "200ms", ...graceArgs]
    })
    await createCell(daemon, "grace")
    const job = await run(daemon, "grace", ["--timeout", "1s", "--", "sh", "-c", TRAPPER])
    const ended = await finished(daemon, job.id)
    const logs = (await daemon.cli(["logs", job.id])).stdout
    return { ended, logs }
  }

  it("--timeout-grace-ms 3000 lets a timed-out job clean up", async () => {
    const { ended, logs } = await timedOut(["--kill-grace-ms", "5000", "--timeout-grace-ms", "3000"])
    expect(ended.termination_reason).toBe("timeout")
    expect(logs).toContain("got TERM")
    expect(logs).toContain("cleaned")
  }, TIMEOUT)

  it("--timeout-grace-ms 100 SIGKILLs it before it has (whatever --kill-grace-ms says)", async () => {
    const { ended, logs } = await timedOut(["--kill-grace-ms", "5000", "--timeout-grace-ms", "100"])
    expect(ended.termination_reason).toBe("timeout")
    expect(logs).not.toContain("cleaned")
    expect(ended.finished_at_ms! - ended.started_at_ms).toBeLessThan(3000)
  }, TIMEOUT)

  it("--memory-grace-ms does not apply to a timeout: the timeout takes --kill-grace-ms", async () => {
    const { ended, logs } = await timedOut(["--kill-grace-ms", "3000", "--memory-grace-ms", "0"])
    expect(ended.termination_reason).toBe("timeout")
    expect(logs).toContain("cleaned")
  }, TIMEOUT)
})
