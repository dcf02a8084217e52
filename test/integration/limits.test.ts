/**
 * Resource limits (issue 10): each limit ends the right job with the right
 * reason and observed value; the log quota bounds what stays on disk; a job
 * may tighten its cell's limits, never loosen them; nonsense units are
 * refused with `limit_invalid`; usage shows while a job runs and its peak after.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { sleep, startDaemon, stopAllDaemons, waitFor, waitForJobEnd } from "../support/daemon.js"

const TIMEOUT = 60_000
const ARGS = ["--kill-grace-ms", "300", "--monitor-interval", "200ms"]

interface JobJson {
  id: string
  status: string
  termination_reason: string | null
  command: { limits: { timeout_ms: number | null; max_rss_bytes: number | null; max_log_bytes: number | null } }
  started_at_ms: number
  finished_at_ms: number | null
  usage: { rss_bytes: number; processes: number; log_bytes: number; peak_rss_bytes: number; cpu_ms: number } | null
  peak_rss_bytes: number | null
  cpu_ms: number | null
  limit_detail: { limit: number; observed: number; at_ms: number } | null
}

afterAll(stopAllDaemons)

const NODE = fs.existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath
const HOG = "const a=[];setInterval(()=>a.push(Buffer.alloc(1e7,1)),50)"

const finished = (daemon: TestDaemon, id: string, timeoutMs = 15_000) => waitForJobEnd<JobJson>(daemon, id, timeoutMs)

const run = async (daemon: TestDaemon, args: ReadonlyArray<string>) =>
  (await daemon.json<JobJson>(["run", "ci", ...args])).id

describe("resource limits", () => {
  let daemon: TestDaemon
  it("starts", async () => {
    daemon = await startDaemon({ args: [...ARGS, "--default-max-log", "50M"] })
    expect((await daemon.cli(["create", "--name", "ci"])).code).toBe(0)
  }, TIMEOUT)

  it("a timeout ends the job at its deadline with reason timeout", async () => {
    const started = Date.now()
    const id = await run(daemon, ["--timeout", "1s", "--", "sleep", "30"])
    const job = await finished(daemon, id)
    expect(job.termination_reason).toBe("timeout")
    expect(job.limit_detail!.limit).toBe(1000)
    expect(job.limit_detail!.observed).toBeGreaterThanOrEqual(1000)
    expect(job.limit_detail!.observed).toBeLessThan(1500)
    expect(Date.now() - started).toBeLessThan(5000)
    const text = (await daemon.cli(["job", "status", id])).stdout
    expect(text).toMatch(/killed: +timeout \(observed .* > limit 1 s\)/)
  }, TIMEOUT)

  it("a job growing past --max-rss ends with memory_limit and the observed value", async () => {
    const id = await run(daemon, ["--max-rss", "200M", "--", NODE, "-e", HOG])
    const job = await finished(daemon, id, 20_000)
    expect(job.termination_reason).toBe("memory_limit")
    expect(job.limit_detail!.limit).toBe(200 * 1024 * 1024)
    expect(job.limit_detail!.observed).toBeGreaterThan(200 * 1024 * 1024)
    expect(job.peak_rss_bytes).toBeGreaterThanOrEqual(job.limit_detail!.observed)
    expect(job.cpu_ms).not.toBeNull()
    expect((await daemon.cli(["job", "status", id])).stdout).toMatch(
      /killed: +memory_limit \(observed \d+ MiB > limit 200 MiB\)/
    )
  }, TIMEOUT)

  it("yes against --max-log ends with log_quota and leaves at most the quota on disk", async () => {
    const id = await run(daemon, ["--max-log", "1M", "--", "yes"])
    const job = await finished(daemon, id)
    expect(job.termination_reason).toBe("log_quota")
    expect(job.limit_detail!.limit).toBe(1024 * 1024)
    expect(job.limit_detail!.observed).toBeGreaterThan(1024 * 1024)
    const size = fs.statSync(path.join(daemon.stateDir, "logs", `${id}.stdout.log`)).size
    expect(size).toBeLessThanOrEqual(1024 * 1024)
    expect(size).toBeGreaterThan(512 * 1024)
  }, TIMEOUT)

  it("run --wait on a job cut back to its log quota ends with the job's outcome, not a bad offset", async () => {
    const result = await daemon.cli(["run", "ci", "--max-log", "1M", "--wait", "--", "sh", "-c", "yes hello"])
    expect(result.stderr).not.toContain("past the end")
    expect(result.code).not.toBe(2)
    const id = (await daemon.json<Array<JobJson>>(["job", "ls", "--limit", "1"]))[0]!.id
    expect((await finished(daemon, id)).termination_reason).toBe("log_quota")
    // Its last word says which limit ended it: the exit code alone (143) would not.
    expect(result.stderr.trimEnd().split("\n").at(-1)).toMatch(
      new RegExp(`^planter: ${id} killed: log_quota \\(observed .* > limit 1 MiB\\)$`)
    )
  }, TIMEOUT)

  it("run --wait says why a job that a limit or a kill ended did not end on its own", async () => {
    const timedOut = await daemon.cli(["run", "ci", "--timeout", "300ms", "--wait", "--", "sleep", "30"])
    expect(timedOut.code).toBe(143)
    expect(timedOut.stderr).toMatch(/^planter: job-\S+ killed: timeout \(observed .* > limit 300 ms\)$/m)
    const followed = await daemon.cli(["logs", "-f", timedOut.stderr.split("\n")[0]!])
    expect(followed.code).toBe(143)
    expect(followed.stderr).toMatch(/^planter: job-\S+ killed: timeout \(observed .* > limit 300 ms\)$/m)
    const exited = await daemon.cli(["run", "ci", "--wait", "--", "sh", "-c", "exit 3"])
    expect(exited).toMatchObject({ code: 3, stderr: expect.not.stringContaining("planter:") })
  }, TIMEOUT)

  it("two limits at once: the first reason wins and only one is recorded", async () => {
    const id = await run(daemon, ["--timeout", "300ms", "--max-log", "1K", "--", "yes"])
    const job = await finished(daemon, id)
    expect(["timeout", "log_quota"]).toContain(job.termination_reason)
    expect(job.limit_detail).not.toBeNull()
  }, TIMEOUT)

  it("an exit at the deadline is recorded once, as exited or timeout", async () => {
    const id = await run(daemon, ["--timeout", "500ms", "--", "sleep", "0.5"])
    const job = await finished(daemon, id)
    expect(["exited", "timeout"]).toContain(job.termination_reason)
    if (job.termination_reason === "exited") expect(job.limit_detail).toBeNull()
  }, TIMEOUT)

  it("a user kill racing a limit: one reason, kept", async () => {
    const id = await run(daemon, ["--timeout", "400ms", "--", "sleep", "30"])
    await sleep(380)
    const killed = await daemon.json<JobJson>(["job", "kill", id])
    expect(["terminated_by_user", "timeout"]).toContain(killed.termination_reason)
    const again = await finished(daemon, id)
    expect(again.termination_reason).toBe(killed.termination_reason)
    expect(again.limit_detail === null).toBe(killed.termination_reason === "terminated_by_user")
  }, TIMEOUT)

  it("shows live usage while running: processes, RSS, log bytes", async () => {
    const id = await run(daemon, ["--", "sh", "-c", "echo hello; sleep 30 & sleep 30"])
    let job: JobJson | undefined
    await waitFor("a usage sample", async () => {
      job = await daemon.json<JobJson>(["job", "status", id])
      return job.usage !== null && job.usage.processes >= 3
    })
    expect(job!.usage!.rss_bytes).toBeGreaterThan(0)
    expect(job!.usage!.log_bytes).toBe(6)
    const top = await daemon.json<Array<JobJson>>(["top"])
    expect(top.map((j) => j.id)).toContain(id)
    expect((await daemon.cli(["top", "--once"])).stdout).toContain(id)
    expect((await daemon.cli(["job", "status", id])).stdout).toMatch(/usage: +rss .*3 process/)
    await daemon.cli(["job", "kill", id])
    const ended = await finished(daemon, id)
    expect(ended.usage).toBeNull()
    expect(ended.peak_rss_bytes).toBeGreaterThan(0)
  }, TIMEOUT)

  it("the daemon's default log quota applies to a job and cell that set none", async () => {
    const job = await daemon.json<JobJson>(["run", "ci", "--", "true"])
    expect(job.command.limits).toEqual({ timeout_ms: null, max_rss_bytes: null, max_log_bytes: 50 * 1024 * 1024 })
  }, TIMEOUT)

  it("cell defaults apply to its jobs, which may tighten them but not loosen them", async () => {
    expect((await daemon.cli(["create", "--name", "tight", "--timeout", "10s", "--max-rss", "1G"])).code).toBe(0)
    const inherited = await daemon.json<JobJson>(["run", "tight", "--", "true"])
    expect(inherited.command.limits).toMatchObject({ timeout_ms: 10_000, max_rss_bytes: 1024 ** 3 })
    const tightened = await daemon.json<JobJson>(["run", "tight", "--timeout", "2s", "--", "true"])
    expect(tightened.command.limits.timeout_ms).toBe(2000)
    const loosened = await daemon.cli(["run", "tight", "--timeout", "1m", "--", "true"])
    expect(loosened.code).toBe(2)
    expect(loosened.stderr).toContain("would loosen the cell's limit of 10 s")
    const json = await daemon.cli(["--json", "run", "tight", "--max-rss", "2G", "--", "true"])
    expect(JSON.parse(json.stdout).error.code).toBe("limit_invalid")
  }, TIMEOUT)

  it("refuses nonsense units with limit_invalid, before anything runs", async () => {
    for (
      const args of [["--timeout", "30"], ["--timeout", "-1s"], ["--max-rss", "12X"], ["--max-log", "0"], [
        "--max-rss",
        "lots"
      ]]
    ) {
      const result = await daemon.cli(["--json", "run", "ci", ...args, "--", "true"])
      expect(result.code, args.join(" ")).toBe(2)
      expect(JSON.parse(result.stdout).error.code).toBe("limit_invalid")
    }
    const cell = await daemon.cli(["--json", "create", "--name", "bad", "--max-log", "1.5Q"])
    expect(JSON.parse(cell.stdout).error.code).toBe("limit_invalid")
  }, TIMEOUT)

  it("health reports the monitor's last tick and its cost", async () => {
    const health = await daemon.json<
      { monitor: { interval_ms: number; last_tick_at_ms: number; ticks: number; restarts: number } }
    >(["health"])
    expect(health.monitor.interval_ms).toBe(200)
    expect(health.monitor.ticks).toBeGreaterThan(0)
    expect(health.monitor.restarts).toBe(0)
    expect(Date.now() - health.monitor.last_tick_at_ms).toBeLessThan(2000)
  }, TIMEOUT)
})
