/**
 * The README tour, end to end through the `planter` binary against a real
 * daemon: cells, jobs with their output and exit codes, kills, removal, and
 * what the CLI says when no daemon is there.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { makeTempDir, pidAlive, repoRoot, runCli, startDaemon, stopAllDaemons } from "../support/daemon.js"

// Every CLI call starts a Node process (about a second here): steps get room.
const STEP_TIMEOUT = 90_000

let daemon: TestDaemon
let cell: any
/** Every job this file started, by id, with its leader's pid and kernel start time. */
const jobs = new Map<string, { pid: number; startTime: string }>()
const remember = (job: any) => jobs.set(job.id, { pid: job.pid, startTime: job.pid_start_time })

/** The kernel start time of `pid` (as the job record keeps it), undefined once it is gone. */
const startTimeOf = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined
  }
}

beforeAll(async () => {
  daemon = await startDaemon({ args: ["--kill-grace-ms", "300"] })
})

afterAll(async () => {
  await stopAllDaemons()
  // A failed step may leave a job behind: end its group, if that pid is still the job's.
  for (const { pid, startTime } of jobs.values()) {
    if (pidAlive(pid) && startTimeOf(pid) === startTime) process.kill(-pid, "SIGKILL")
  }
})

/** Starts `argv` in `cellName` and answers its job document. */
const runJob = async (cellName: string, argv: ReadonlyArray<string>) => {
  const job = await daemon.json(["run", cellName, "--", ...argv])
  remember(job)
  return job
}

/** `--json` errors are one document on stdout: {"error":{code,message,detail}}. */
const jsonError = (stdout: string) =>
  JSON.parse(stdout).error as { code: string; message: string; detail: string | null }

describe("the tour", () => {
  it("creates a cell with its env and lists it", async () => {
    cell = await daemon.json(["create", "--name", "demo", "--env", "GREETING=hi"])
    expect(cell.id).toMatch(/^cell-[a-z0-9]+$/)
    expect(cell.name).toBe("demo")
    expect(cell.env).toEqual({ GREETING: "hi" })
    expect(fs.statSync(cell.dir).isDirectory()).toBe(true)

    const cells = await daemon.json(["cell", "ls"])
    expect(cells).toContainEqual(cell)
  }, STEP_TIMEOUT)

  it("run --wait streams stdout and stderr apart and exits with the job's code", async () => {
    const result = await daemon.cli([
      "run",
      "demo",
      "--wait",
      "--",
      "sh",
      "-c",
      "echo $GREETING; echo oops >&2; exit 3"
    ])
    expect(result.code).toBe(3)
    expect(result.stdout).toBe("hi\n")
    expect(result.stderr).toContain("oops\n")
    expect(result.stderr).not.toContain("hi\n")
  }, STEP_TIMEOUT)

  it("run prints the job id, logs -f prints every line and ends with the job", async () => {
    const script = "for i in 1 2 3; do echo line$i; sleep 0.2; done"
    const started = await daemon.cli(["run", "demo", "--", "sh", "-c", script])
    expect(started.code).toBe(0)
    const id = started.stdout.trim()
    expect(id).toMatch(/^job-[a-z0-9]+$/)

    const logs = await daemon.cli(["logs", id, "-f"])
    expect(logs.code).toBe(0)
    expect(logs.stdout).toBe("line1\nline2\nline3\n")

    // logs -f ended, so the job has: its record says how.
    const job = await daemon.json(["job", "status", id, "--json"])
    remember(job)
    expect(job).toMatchObject({
      id,
      cell_id: cell.id,
      command: { argv: ["sh", "-c", script], cwd: cell.dir },
      status: "exited",
      exit_code: 0,
      signal: null,
      termination_reason: "exited",
      sandbox: { mode: "disabled", backend: "none" }
    })
    expect(job.pid).toBeTypeOf("number")
    expect(job.finished_at_ms).toBeGreaterThanOrEqual(job.started_at_ms)
  }, STEP_TIMEOUT)

  it("job kill ends a long job as terminated_by_user", async () => {
    const job = await runJob("demo", ["sleep", "60"])
    expect(job).toMatchObject({ status: "running", termination_reason: null, exit_code: null })
    expect(pidAlive(job.pid)).toBe(true)
    expect((await daemon.json(["health"])).running_jobs).toBe(1)

    const killed = await daemon.json(["job", "kill", job.id])
    expect(killed).toMatchObject({
      id: job.id,
      status: "exited",
      termination_reason: "terminated_by_user",
      signal: "SIGTERM"
    })
    expect(pidAlive(job.pid)).toBe(false)
  }, STEP_TIMEOUT)

  it("job kill --force ends a long job as forced_kill with SIGKILL", async () => {
    const job = await runJob("demo", ["sleep", "60"])
    const killed = await daemon.json(["job", "kill", job.id, "--force"])
    expect(killed).toMatchObject({ id: job.id, status: "exited", termination_reason: "forced_kill", signal: "SIGKILL" })
    expect(pidAlive(job.pid)).toBe(false)
    expect(await daemon.json(["job", "status", job.id])).toEqual(killed)
  }, STEP_TIMEOUT)

  it("job ls --cell lists that cell's jobs and no others", async () => {
    await daemon.json(["create", "--name", "other"])
    const elsewhere = await daemon.json(["run", "other", "--wait", "--", "true"])
    remember(elsewhere)

    const listed = await daemon.json(["job", "ls", "--cell", "demo"])
    const ids = listed.map((job: any) => job.id)
    // Every job the earlier steps started in demo (all but the one in `other`).
    for (const id of jobs.keys()) {
      if (id !== elsewhere.id) expect(ids).toContain(id)
    }
    expect(ids).not.toContain(elsewhere.id)
    expect(listed.every((job: any) => job.cell_id === cell.id)).toBe(true)

    const all = (await daemon.json(["job", "ls"])).map((job: any) => job.id)
    expect(all).toContain(elsewhere.id)
  }, STEP_TIMEOUT)

  it("cell rm refuses a cell with a running job; --force kills the job and removes the cell", async () => {
    const job = await runJob("demo", ["sleep", "60"])

    const refused = await daemon.cli(["--json", "cell", "rm", "demo"])
    expect(refused.code).toBe(1)
    const error = jsonError(refused.stdout)
    expect(error.code).toBe("conflict")
    expect(error.message).toContain(job.id)
    expect(pidAlive(job.pid)).toBe(true)
    expect(fs.existsSync(cell.dir)).toBe(true)

    const removed = await daemon.json(["cell", "rm", "demo", "--force"])
    expect(removed).toEqual(cell)
    expect(pidAlive(job.pid)).toBe(false)
    expect(fs.existsSync(cell.dir)).toBe(false)
    expect((await daemon.json(["cell", "ls"])).map((c: any) => c.name)).not.toContain("demo")
    expect(await daemon.json(["job", "status", job.id])).toMatchObject({
      status: "exited",
      termination_reason: "forced_kill"
    })
  }, STEP_TIMEOUT)

  it("version and health describe the daemon", async () => {
    const packageVersion = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")).version
    const version = await daemon.json(["version"])
    expect(version).toEqual({
      client_version: packageVersion,
      client_protocol_version: expect.any(Number),
      version: packageVersion,
      protocol_version: version.client_protocol_version
    })

    const health = await daemon.json(["health"])
    expect(health).toMatchObject({
      ok: true,
      version: packageVersion,
      pid: daemon.pid,
      socket: daemon.socketPath,
      state_dir: daemon.stateDir,
      sandbox: { mode: "disabled", backend: "none" },
      running_jobs: 0
    })
    expect(health.uptime_ms).toBeGreaterThanOrEqual(0)
  }, STEP_TIMEOUT)
})

describe("without a daemon", () => {
  it("exits 3 and says how to start planterd", async () => {
    const socketPath = path.join(makeTempDir(), "nobody.sock")
    const result = await runCli(socketPath, ["health"])
    expect(result.code).toBe(3)
    expect(result.stderr).toContain(socketPath)
    expect(result.stderr).toMatch(/start .*planterd/)

    const json = await runCli(socketPath, ["--json", "cell", "ls"])
    expect(json.code).toBe(3)
    expect(jsonError(json.stdout).code).toBe("no_daemon")
  }, STEP_TIMEOUT)
})
