/**
 * State outlives the daemon: a restart keeps cells, jobs and the journal; a
 * crash leaves jobs running for the next daemon to adopt (or mark lost);
 * --keep-jobs does the same on purpose. And planterd refuses a socket path
 * it must not take, but replaces a stale one.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import {
  makeTempDir,
  pidAlive,
  planterdBin,
  runNodeScript,
  socketAnswers,
  startDaemon,
  stopAllDaemons,
  waitFor
} from "../support/daemon.js"

const TIMEOUT = 90_000

/** better-sqlite3 ships no types here; this is all the test uses of it. */
interface ReadOnlyDb {
  prepare: (sql: string) => {
    all: (...params: Array<unknown>) => Array<Record<string, unknown>>
    run: (...params: Array<unknown>) => unknown
  }
  close: () => void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new(
  file: string,
  options: { readonly: boolean }
) => ReadOnlyDb

/** Job leaders this file started (pid → kernel start time), killed in afterAll if a test failed before it could. */
const leaders = new Map<number, string>()
const startTimeOf = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined // Gone already.
  }
}

afterAll(async () => {
  await stopAllDaemons()
  for (const [pid, startTime] of leaders) {
    if (pidAlive(pid) && startTimeOf(pid) === startTime) process.kill(-pid, "SIGKILL")
  }
})

const runJob = async (daemon: TestDaemon, cellName: string, argv: ReadonlyArray<string>) => {
  const job = await daemon.json(["run", cellName, "--", ...argv])
  const startTime = startTimeOf(job.pid)
  if (startTime !== undefined) leaders.set(job.pid, startTime)
  return job
}

/** Runs planterd itself (not through startDaemon, which waits for it to answer) and collects its output. */
const runPlanterd = (args: ReadonlyArray<string>) => runNodeScript(planterdBin, ["--sandbox-mode", "disabled", ...args])

describe("restart", () => {
  it("a restarted daemon lists the same cells and jobs, and the journal recorded them", async () => {
    const first = await startDaemon()
    const cell = await first.json(["create", "--name", "kept", "--env", "A=1"])
    const job = await runJob(first, "kept", ["sh", "-c", "echo kept"])
    expect((await first.cli(["logs", job.id, "-f"])).stdout).toBe("kept\n")
    const cellsBefore = await first.json(["cell", "ls"])
    const jobsBefore = await first.json(["job", "ls"])
    expect(jobsBefore).toContainEqual(
      expect.objectContaining({ id: job.id, termination_reason: "exited", exit_code: 0 })
    )
    expect(await first.stop("SIGTERM")).toBe(0)

    const second = await startDaemon({ stateDir: first.stateDir })
    expect(await second.json(["cell", "ls"])).toEqual(cellsBefore)
    expect(await second.json(["job", "ls"])).toEqual(jobsBefore)
    expect((await second.cli(["logs", job.id])).stdout).toBe("kept\n")

    const db = new Database(path.join(first.stateDir, "planter.db"), { readonly: true })
    try {
      const events = db.prepare("SELECT kind, cell_id, job_id, detail_json FROM events ORDER BY id").all()
      expect(events).toContainEqual(expect.objectContaining({ kind: "cell_created", cell_id: cell.id }))
      // The job's own life; the audit row of the request that started it (kind `request`) may land before or after its end.
      const ofJob = events.filter((event) => event.job_id === job.id && event.kind !== "request").map((event) =>
        event.kind
      )
      expect(ofJob).toEqual(["job_started", "job_exited"])
      expect(events.filter((event) => event.job_id === job.id && event.kind === "request")).toHaveLength(1)
      const exited = events.find((event) => event.job_id === job.id && event.kind === "job_exited")!
      expect(JSON.parse(String(exited.detail_json))).toMatchObject({ termination_reason: "exited", exit_code: 0 })
    } finally {
      db.close()
    }
  }, TIMEOUT)

  it("after a crash, a running job is adopted and a job that died meanwhile is lost", async () => {
    const crashed = await startDaemon({ args: ["--kill-grace-ms", "300"] })
    await crashed.json(["create", "--name", "crash"])
    const survivor = await runJob(crashed, "crash", ["sleep", "300"])
    const victim = await runJob(crashed, "crash", ["sleep", "300"])
    await crashed.stop("SIGKILL")
    // A crash leaves its jobs running.
    expect(pidAlive(survivor.pid)).toBe(true)
    expect(pidAlive(victim.pid)).toBe(true)

    // One job dies while no daemon watches.
    process.kill(victim.pid, "SIGKILL")
    await waitFor("the victim to die", () => !pidAlive(victim.pid))

    const next = await startDaemon({ stateDir: crashed.stateDir, args: ["--kill-grace-ms", "300"] })
    expect(await next.json(["job", "status", survivor.id])).toMatchObject({
      status: "running",
      termination_reason: null,
      pid: survivor.pid,
      pid_start_time: survivor.pid_start_time
    })
    expect(await next.json(["job", "status", victim.id])).toMatchObject({
      status: "exited",
      termination_reason: "lost"
    })
    expect((await next.json(["health"])).running_jobs).toBe(1)

    const killed = await next.json(["job", "kill", survivor.id])
    expect(killed).toMatchObject({ status: "exited", termination_reason: "terminated_by_user" })
    expect(pidAlive(survivor.pid)).toBe(false)
  }, TIMEOUT)

  it("--keep-jobs leaves a job running across a graceful restart", async () => {
    const keeping = await startDaemon({ args: ["--keep-jobs"] })
    await keeping.json(["create", "--name", "keep"])
    const job = await runJob(keeping, "keep", ["sleep", "300"])
    expect(await keeping.stop("SIGTERM")).toBe(0)
    expect(pidAlive(job.pid)).toBe(true)

    // The next daemon does not keep jobs, so the test's own cleanup cannot leave this one behind.
    const next = await startDaemon({ stateDir: keeping.stateDir })
    expect(await next.json(["job", "status", job.id])).toMatchObject({ status: "running", pid: job.pid })
    expect(await next.json(["job", "kill", job.id])).toMatchObject({
      status: "exited",
      termination_reason: "terminated_by_user"
    })
    expect(pidAlive(job.pid)).toBe(false)
  }, TIMEOUT)

  it("a row without a process start time is never adopted by its pid alone, even when that pid is alive", async () => {
    const first = await startDaemon()
    const cell = await first.json(["create", "--name", "nostart"])
    expect(await first.stop("SIGTERM")).toBe(0)
    // A process that holds the recorded pid now: for all anyone can prove, a stranger that reused it.
    const stranger = spawn("sleep", ["300"], { stdio: "ignore" })
    leaders.set(stranger.pid!, startTimeOf(stranger.pid!)!)
    const db = new Database(path.join(first.stateDir, "planter.db"), { readonly: false })
    try {
      db.prepare(`INSERT INTO jobs (id, cell_id, command_json, status, pid, pid_start_time, started_at_ms, sandbox_json)
        VALUES (?, ?, ?, 'running', ?, NULL, ?, ?)`).run(
        "job-nostarttime",
        cell.id,
        JSON.stringify({ argv: ["sleep", "300"], cwd: cell.dir, env: {}, limits: null }),
        stranger.pid,
        Date.now(),
        JSON.stringify({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null })
      )
    } finally {
      db.close()
    }

    const next = await startDaemon({ stateDir: first.stateDir })
    expect(await next.json(["job", "status", "job-nostarttime"])).toMatchObject({
      status: "exited",
      termination_reason: "lost",
      exit_code: null
    })
    expect((await next.json(["health"])).running_jobs).toBe(0)
    expect(pidAlive(stranger.pid!)).toBe(true)
    const events = new Database(path.join(first.stateDir, "planter.db"), { readonly: true })
    try {
      const lost = events.prepare(
        "SELECT detail_json FROM events WHERE kind = 'job_lost' AND job_id = 'job-nostarttime'"
      ).all()
      expect(JSON.parse(String(lost[0]!.detail_json)).note).toContain("no process start time was recorded")
    } finally {
      events.close()
    }
    process.kill(stranger.pid!, "SIGKILL")
  }, TIMEOUT)
})

describe("startup and the socket path", () => {
  it("a second daemon on a live socket fails and the first keeps serving", async () => {
    const first = await startDaemon()
    const second = await runPlanterd(["--state-dir", makeTempDir(), "--socket", first.socketPath])
    expect(second.code).not.toBe(0)
    expect(second.stdout + second.stderr).toContain(`already listening on ${first.socketPath}`)
    expect(fs.statSync(first.socketPath).isSocket()).toBe(true)
    expect(await first.json(["health"])).toMatchObject({ ok: true, pid: first.pid })
  }, TIMEOUT)

  it("a file that is not a socket is refused, named and left alone", async () => {
    const dir = makeTempDir()
    const socketPath = path.join(dir, "not-a-socket")
    fs.writeFileSync(socketPath, "precious\n")
    const result = await runPlanterd(["--state-dir", dir, "--socket", socketPath])
    expect(result.code).not.toBe(0)
    expect(result.stdout + result.stderr).toContain(`${socketPath} exists and is not a socket`)
    expect(fs.readFileSync(socketPath, "utf8")).toBe("precious\n")
  }, TIMEOUT)

  it("a stale socket left by a dead process is replaced", async () => {
    const dir = makeTempDir()
    const socketPath = path.join(dir, "stale.sock")
    // A listener that dies by SIGKILL leaves its socket file with nobody behind it.
    const holder = spawn(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(socketPath)}, () => console.log("ready"))`
    ], { stdio: ["ignore", "pipe", "inherit"] })
    await new Promise((resolve) => holder.stdout.once("data", resolve))
    holder.kill("SIGKILL")
    await new Promise((resolve) => holder.once("exit", resolve))
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true)
    expect(await socketAnswers(socketPath)).toBe(false)

    const daemon = await startDaemon({ stateDir: dir, socketPath })
    expect(await daemon.json(["health"])).toMatchObject({ ok: true, socket: socketPath })
    expect(daemon.output()).toContain("stale socket")
  }, TIMEOUT)
})
