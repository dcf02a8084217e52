/**
 * Job lifetimes across daemon crashes (PBX-M11-T05): a job outlives a
 * SIGKILLed daemon and the next one adopts it (logs keep growing, kill
 * works, its real exit is recorded); a crash at any instant of a start or of
 * a cell removal leaves no orphan process and no ghost record; one daemon
 * per state dir; leftovers of jobs that ended meanwhile are removed; a full
 * disk never hangs a kill or a run; a reused pid is never signalled; an
 * unsandboxed child that escaped with setsid still dies with its job.
 *
 * Every job carries a unique marker on its command line, so the test finds
 * its processes from the host by walking /proc, whatever their session,
 * group, parent or PID namespace.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { CliResult, TestDaemon } from "../support/daemon.js"
import {
  makeTempDir,
  pidAlive,
  sleep,
  startDaemon,
  startDaemonExpectingRefusal,
  stopAllDaemons,
  waitFor
} from "../support/daemon.js"
import {
  bwrap,
  bwrapEnv,
  createCell,
  onPath,
  processesWithMarker,
  processTree,
  sandboxDescribe,
  startTimeOf
} from "../support/sandbox.js"

const TIMEOUT = 60_000
// Short, so kills of trees that honour SIGTERM anyway end quickly.
const GRACE = ["--kill-grace-ms", "300"]
const isRoot = process.getuid?.() === 0

// Registers the loud warning (or the failing case under PLANTER_REQUIRE_SANDBOX=1) when bubblewrap is missing.
sandboxDescribe()
const itSandboxed = it.skipIf(bwrap === undefined)

interface Mode {
  readonly label: string
  readonly sandboxed: boolean
  readonly args: ReadonlyArray<string>
  readonly env: NodeJS.ProcessEnv
}
const UNSANDBOXED: Mode = {
  label: "unsandboxed",
  sandboxed: false,
  args: ["--sandbox-mode", "disabled", ...GRACE],
  env: {}
}
const BUBBLEWRAP: Mode = {
  label: "bubblewrap",
  sandboxed: true,
  args: ["--sandbox-mode", "enforced", ...GRACE],
  env: bwrapEnv()
}
const itIn = (mode: Mode) => (mode.sandboxed ? itSandboxed : it)

/** better-sqlite3 ships no types here; this is all the test uses of it. */
interface ReadOnlyDb {
  prepare: (sql: string) => { all: (...params: Array<unknown>) => Array<Record<string, unknown>> }
  close: () => void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new(
  file: string,
  options: { readonly: boolean }
) => ReadOnlyDb

/** Rows of the daemon's database, read (read-only) while no daemon runs or beside one. */
const queryDb = (stateDir: string, sql: string, ...params: Array<unknown>) => {
  const db = new Database(path.join(stateDir, "planter.db"), { readonly: true })
  try {
    return db.prepare(sql).all(...params)
  } finally {
    db.close()
  }
}

/** A job as `--json` renders it: the fields these tests read. */
interface Job {
  readonly id: string
  readonly cell_id: string
  readonly status: "starting" | "running" | "exited"
  readonly exit_code: number | null
  readonly signal: string | null
  readonly termination_reason: string | null
  readonly pid: number | null
  readonly pid_start_time: string | null
  readonly sandbox: { readonly backend: string }
}

// ---------------------------------------------------------------------------
// Markers, and the clean-up that never leaves a process behind.

const RUN = `${process.pid.toString(36)}${Date.now().toString(36)}`
let markerCount = 0
/** A string found on the command line of this job's processes and nowhere else. */
const newMarker = (label: string) => `lt-${label}-${RUN}-${++markerCount}`

/** Processes outside any job that this file started (pid → kernel start time), killed at the end. */
const strangers = new Map<number, string>()
/** Run first in afterAll: free, stop and unmount what the disk-full case mounted, even after a failure. */
const diskCleanups: Array<() => Promise<void>> = []

const killQuietly = (pid: number, signal: NodeJS.Signals = "SIGKILL") => {
  try {
    process.kill(pid, signal)
  } catch {
    // Gone already.
  }
}

/** Every live process carrying one of this file's markers, and all their descendants: a snapshot to kill. */
const leftoverProcesses = () => {
  const found = new Map<number, string>()
  for (const marked of processesWithMarker(RUN)) {
    for (const member of processTree(marked.pid)) {
      const startTime = startTimeOf(member.pid)
      if (startTime !== undefined) found.set(member.pid, startTime)
    }
  }
  return found
}

afterAll(async () => {
  try {
    for (const cleanup of diskCleanups.splice(0)) await cleanup()
    await stopAllDaemons()
  } finally {
    // Only the very processes seen, never whatever reused their pids since.
    for (const [pid, startTime] of [...leftoverProcesses(), ...strangers]) {
      if (pidAlive(pid) && startTimeOf(pid) === startTime) killQuietly(pid)
    }
  }
}, TIMEOUT)

// ---------------------------------------------------------------------------
// Helpers.

const startIn = (
  mode: Mode,
  options: { readonly stateDir?: string; readonly env?: NodeJS.ProcessEnv; readonly args?: ReadonlyArray<string> } = {}
) =>
  startDaemon({
    ...(options.stateDir !== undefined ? { stateDir: options.stateDir } : {}),
    args: [...mode.args, ...(options.args ?? [])],
    env: { ...mode.env, ...options.env }
  })

/** `planter run CELL -- sh -c SCRIPT MARKER`: the marker is the shell's $0, so it shows on its command line (and bwrap's). */
const runScript = (daemon: TestDaemon, cell: string, script: string, marker: string) =>
  daemon.json<Job>(["run", cell, "--", "sh", "-c", script, marker])

/** `planter …` with a bound: a call that hangs answers `timedOut` instead of failing the whole test. */
const cliWithin = async (
  daemon: TestDaemon,
  args: ReadonlyArray<string>,
  timeoutMs: number
): Promise<CliResult & { readonly timedOut: boolean }> => {
  try {
    return { ...(await daemon.cli(args, { timeoutMs })), timedOut: false }
  } catch (error) {
    if (!String(error).includes("did not finish")) throw error
    return { code: null, stdout: "", stderr: String(error), timedOut: true }
  }
}

/** Stops `daemon` with SIGTERM, or SIGKILL when it has not exited within `ms`: answers what happened. */
const stopWithin = async (daemon: TestDaemon, ms: number) => {
  const stopped = daemon.stop("SIGTERM")
  let timer: NodeJS.Timeout | undefined
  const outcome = await Promise.race([
    stopped.then((code) => ({ code })),
    new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), ms)))
  ])
  clearTimeout(timer)
  if (outcome !== "hung") return outcome
  daemon.process.kill("SIGKILL")
  await stopped
  return outcome
}

const statusOf = (daemon: TestDaemon, id: string) => daemon.json<Job>(["job", "status", id])

const waitForStatus = async (daemon: TestDaemon, id: string, status: Job["status"], timeoutMs = 20_000) => {
  let job: Job | undefined
  await waitFor(`${id} to be ${status}`, async () => {
    job = await statusOf(daemon, id)
    return job.status === status
  }, timeoutMs)
  return job!
}

const stdoutLog = (daemon: TestDaemon, id: string) => path.join(daemon.stateDir, "logs", `${id}.stdout.log`)
const readIfExists = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "")
const tmpDirOf = (daemon: TestDaemon, id: string) => path.join(daemon.stateDir, "tmp", id)
const statusFileOf = (daemon: TestDaemon, id: string) => path.join(daemon.stateDir, "run", `${id}.status`)
/** Runs a command to its end, output discarded: answers its exit status (non-zero when it could not run). */
const spawnSyncQuiet = (command: string, args: ReadonlyArray<string>) =>
  spawnSync(command, args, { stdio: "ignore", timeout: 10_000 }).status ?? 1

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, …]. */
const statFields = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
}

const listDir = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [])

/** The job a process belongs to, by the PLANTER_JOB_ID in its environment (undefined: none, or gone). */
const jobIdInEnvironment = (pid: number) => {
  try {
    const entry = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").find((variable) =>
      variable.startsWith("PLANTER_JOB_ID=")
    )
    return entry?.slice("PLANTER_JOB_ID=".length)
  } catch {
    return undefined
  }
}

/** The reconciler's summary line, as the daemon logged it. */
const reconciledLine = (daemon: TestDaemon) =>
  daemon.output().split("\n").find((line) => line.includes("reconciled:")) ?? ""

/** Processes still alive with `marker` on their command line, awaited briefly (a killed orphan may take a moment to be reaped). */
const awaitNoMarked = async (marker: string, timeoutMs = 5_000) => {
  try {
    await waitFor(`no process with ${marker}`, () => processesWithMarker(marker).length === 0, timeoutMs)
  } catch {
    // Reported by the caller's assertion on what is left.
  }
  return processesWithMarker(marker).map((entry) => `${entry.pid} ${entry.cmdline}`)
}

/**
 * No orphan and no ghost: no job is `starting`; every `running` job's
 * recorded process is alive and the same (pid + start time); every live
 * process carrying one of `markers` belongs to a job listed `running` (its
 * environment names the job, and it is the job's leader or a descendant).
 */
const expectNoOrphanNoGhost = async (daemon: TestDaemon, ...markers: ReadonlyArray<string>) => {
  const jobs = await daemon.json<Array<Job>>(["job", "ls"])
  expect(jobs.filter((job) => job.status === "starting").map((job) => job.id), "jobs left `starting` (ghosts)").toEqual(
    []
  )
  const running = new Map(jobs.filter((job) => job.status === "running").map((job) => [job.id, job]))
  for (const job of running.values()) {
    expect(
      pidAlive(job.pid!) && startTimeOf(job.pid!) === job.pid_start_time,
      `running job ${job.id}: its process ${job.pid} is alive (else a ghost)`
    )
      .toBe(true)
  }
  for (const marked of markers.flatMap(processesWithMarker)) {
    const owner = running.get(jobIdInEnvironment(marked.pid) ?? "")
    expect(owner, `process ${marked.pid} (${marked.cmdline}) belongs to no running job: an orphan`).toBeDefined()
    expect(processTree(owner!.pid!).map((member) => member.pid), `process ${marked.pid} is in the tree of ${owner!.id}`)
      .toContain(marked.pid)
  }
}

const TICKER = "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done"
/** Waits in its cell dir for a file named `go`, then exits 7. */
const WAITER = "while [ ! -e go ]; do sleep 0.1; done; echo going; exit 7"
const ticks = (daemon: TestDaemon, id: string) =>
  readIfExists(stdoutLog(daemon, id)).split("\n").filter((line) => line.startsWith("tick ")).length

// ---------------------------------------------------------------------------

describe("a daemon killed with SIGKILL leaves its jobs to the next one", () => {
  for (const mode of [UNSANDBOXED, BUBBLEWRAP]) {
    itIn(mode)(
      `${mode.label}: jobs are adopted, logs keep growing, kill works, an exit after the restart is recorded`,
      async () => {
        const crashed = await startIn(mode)
        const cell = await createCell(crashed, "adopt")
        const tickerMarker = newMarker("ticker")
        const waiterMarker = newMarker("waiter")
        const ticker = await runScript(crashed, cell.name, TICKER, tickerMarker)
        const waiter = await runScript(crashed, cell.name, WAITER, waiterMarker)
        expect(ticker.sandbox.backend).toBe(mode.sandboxed ? "bubblewrap" : "none")
        await waitFor("two ticks", () => ticks(crashed, ticker.id) >= 2)

        await crashed.stop("SIGKILL")
        expect(pidAlive(ticker.pid!), "the ticker outlived the daemon").toBe(true)
        expect(pidAlive(waiter.pid!), "the waiter outlived the daemon").toBe(true)

        const next = await startIn(mode, { stateDir: crashed.stateDir })
        expect(reconciledLine(next)).toContain("reconciled: 2 job(s) adopted")
        const listed = await next.json<Array<Job>>(["job", "ls"])
        for (const job of [ticker, waiter]) {
          expect(listed.find((entry) => entry.id === job.id)).toMatchObject({
            status: "running",
            termination_reason: null,
            pid: job.pid,
            pid_start_time: job.pid_start_time
          })
        }
        await expectNoOrphanNoGhost(next, tickerMarker, waiterMarker)

        // The log keeps growing after the restart, and the daemon serves it.
        const before = ticks(next, ticker.id)
        await waitFor("five more ticks after the restart", () => ticks(next, ticker.id) >= before + 5)
        const served = (await next.cli(["logs", ticker.id])).stdout
        expect(served.split("\n").filter((line) => line.startsWith("tick ")).length).toBeGreaterThanOrEqual(before + 5)

        // job kill works on an adopted job.
        expect(await next.json(["job", "kill", ticker.id])).toMatchObject({
          status: "exited",
          termination_reason: "terminated_by_user"
        })
        expect(await awaitNoMarked(tickerMarker), "processes of the killed ticker").toEqual([])
        expect(fs.existsSync(tmpDirOf(next, ticker.id)), "the ticker's TMPDIR").toBe(false)

        // An adopted job that exits by itself: bubblewrap's status gives its real code; an unsandboxed one's is unknown.
        expect(await statusOf(next, waiter.id)).toMatchObject({ status: "running" })
        fs.writeFileSync(path.join(cell.dir, "go"), "")
        const ended = await waitForStatus(next, waiter.id, "exited")
        expect(ended).toMatchObject({ termination_reason: "exited", exit_code: mode.sandboxed ? 7 : null })
        expect(readIfExists(stdoutLog(next, waiter.id))).toBe("going\n")
        expect(await awaitNoMarked(waiterMarker), "processes of the waiter").toEqual([])
        expect(fs.existsSync(tmpDirOf(next, waiter.id)), "the waiter's TMPDIR").toBe(false)
        expect((await next.json(["health"])).running_jobs).toBe(0)
      },
      TIMEOUT
    )
  }

  itSandboxed("bubblewrap: a job that exits while no daemon runs gets its real exit code (reason exited)", async () => {
    const crashed = await startIn(BUBBLEWRAP)
    const cell = await createCell(crashed, "meanwhile")
    const marker = newMarker("meanwhile")
    const job = await runScript(crashed, cell.name, WAITER, marker)
    await crashed.stop("SIGKILL")

    fs.writeFileSync(path.join(cell.dir, "go"), "")
    await waitFor(
      "the job to end with no daemon",
      () => !pidAlive(job.pid!) && processesWithMarker(marker).length === 0
    )
    // What the launcher left for the next daemon.
    expect(readIfExists(statusFileOf(crashed, job.id))).toMatch(/"exit-code": ?7/)

    const next = await startIn(BUBBLEWRAP, { stateDir: crashed.stateDir })
    expect(reconciledLine(next)).toContain("1 ended while no daemon ran")
    expect(await statusOf(next, job.id)).toMatchObject({ status: "exited", exit_code: 7, termination_reason: "exited" })
    expect(fs.existsSync(statusFileOf(next, job.id)), "the status file, once the end is recorded").toBe(false)
    expect(fs.existsSync(tmpDirOf(next, job.id)), "the job's TMPDIR").toBe(false)
    expect((await next.cli(["logs", job.id])).stdout).toBe("going\n")
  }, TIMEOUT)
})

describe("--keep-jobs", () => {
  itSandboxed("bubblewrap: a SIGTERM stop leaves the job running and the next daemon adopts it", async () => {
    const keeping = await startIn(BUBBLEWRAP, { args: ["--keep-jobs"] })
    await createCell(keeping, "kept")
    const marker = newMarker("kept")
    const job = await runScript(keeping, "kept", TICKER, marker)
    await waitFor("a tick", () => ticks(keeping, job.id) >= 1)
    expect(await keeping.stop("SIGTERM")).toBe(0)
    expect(pidAlive(job.pid!), "the job outlived the graceful stop").toBe(true)

    // The next daemon does not keep jobs, so the test's own clean-up cannot leave this one behind.
    const next = await startIn(BUBBLEWRAP, { stateDir: keeping.stateDir })
    expect(await statusOf(next, job.id)).toMatchObject({
      status: "running",
      pid: job.pid,
      pid_start_time: job.pid_start_time
    })
    const before = ticks(next, job.id)
    await waitFor("the log to keep growing", () => ticks(next, job.id) >= before + 3)
    expect(await next.json(["job", "kill", job.id])).toMatchObject({
      status: "exited",
      termination_reason: "terminated_by_user"
    })
    expect(await awaitNoMarked(marker)).toEqual([])
  }, TIMEOUT)
})

describe("a crash at any instant of a start leaves no orphan and no ghost", () => {
  const cases: Array<{ readonly point: string; readonly mode: Mode; readonly processExisted: boolean }> = [
    { point: "job-recorded", mode: UNSANDBOXED, processExisted: false },
    { point: "job-spawned", mode: UNSANDBOXED, processExisted: true },
    { point: "job-spawned", mode: BUBBLEWRAP, processExisted: true },
    { point: "job-running", mode: UNSANDBOXED, processExisted: true }
  ]
  for (const { mode, point, processExisted } of cases) {
    itIn(mode)(
      `${mode.label}, crash at ${point}: ${
        processExisted ? "the process is adopted and job kill kills it" : "the row is finished lost"
      }`,
      async () => {
        const crashing = await startIn(mode, { env: { PLANTER_TEST_CRASH_AT: point } })
        const cell = await createCell(crashing, "crashy")
        const marker = newMarker(point)
        // The CLI loses its connection when the daemon dies: expected.
        const run = await cliWithin(crashing, ["run", cell.name, "--", "sh", "-c", `echo ${marker}; sleep 300`], 20_000)
        expect(run.timedOut, "planter run returned").toBe(false)
        expect(run.code, `planter run: ${run.stdout}${run.stderr}`).not.toBe(0)
        await crashing.stop()
        expect(crashing.process.signalCode, `the daemon killed itself at ${point}`).toBe("SIGKILL")
        expect(processesWithMarker(marker).length > 0, "the job's process exists after the crash").toBe(processExisted)

        const next = await startIn(mode, { stateDir: crashing.stateDir })
        const jobs = await next.json<Array<Job>>(["job", "ls", "--cell", cell.name])
        expect(jobs, "the one job of the cell").toHaveLength(1)
        const job = jobs[0]!
        await expectNoOrphanNoGhost(next, marker)

        if (!processExisted) {
          expect(job).toMatchObject({ status: "exited", termination_reason: "lost", pid: null })
          expect(processesWithMarker(marker)).toEqual([])
          expect(fs.existsSync(tmpDirOf(next, job.id)), "the TMPDIR of the job that never started").toBe(false)
          return
        }
        expect(job).toMatchObject({
          status: "running",
          termination_reason: null,
          sandbox: { backend: mode.sandboxed ? "bubblewrap" : "none" }
        })
        expect(processTree(job.pid!).map((member) => member.pid), "the adopted pid leads the marked process").toEqual(
          expect.arrayContaining(processesWithMarker(marker).map((entry) => entry.pid))
        )
        await waitFor("the job's output", () => readIfExists(stdoutLog(next, job.id)) === `${marker}\n`)
        expect(await next.json(["job", "kill", job.id])).toMatchObject({
          status: "exited",
          termination_reason: "terminated_by_user"
        })
        expect(await awaitNoMarked(marker), "processes of the job alive after job kill").toEqual([])
        expect(pidAlive(job.pid!)).toBe(false)
      },
      TIMEOUT
    )
  }
})

describe("cell removal", () => {
  it("cell rm --force interrupted by a crash is finished by the next daemon: cell, dir and job gone", async () => {
    const crashing = await startIn(UNSANDBOXED, { env: { PLANTER_TEST_CRASH_AT: "cell-marked-removing" } })
    const cell = await createCell(crashing, "doomed")
    const marker = newMarker("doomed")
    const job = await runScript(crashing, cell.name, "echo ready; sleep 300", marker)
    const many = path.join(cell.dir, "many")
    fs.mkdirSync(many)
    for (let i = 0; i < 5000; i++) fs.writeFileSync(path.join(many, `f${i}`), `${i}\n`)

    const removal = await cliWithin(crashing, ["cell", "rm", cell.name, "--force"], 20_000)
    expect(removal.timedOut).toBe(false)
    expect(removal.code, "cell rm lost its daemon").not.toBe(0)
    await crashing.stop()
    expect(crashing.process.signalCode, "the daemon killed itself once the cell was marked").toBe("SIGKILL")
    // The crash came between the tombstone and the work: all of it is still there.
    expect(pidAlive(job.pid!), "the cell's job").toBe(true)
    expect(fs.readdirSync(many)).toHaveLength(5000)
    expect(queryDb(crashing.stateDir, "SELECT removing_at_ms FROM cells WHERE id = ?", cell.id), "the tombstone")
      .toEqual([
        { removing_at_ms: expect.any(Number) }
      ])

    const next = await startIn(UNSANDBOXED, { stateDir: crashing.stateDir })
    expect(reconciledLine(next)).toContain("1 interrupted cell removal(s) finished")
    const cells = await next.json<Array<{ id: string; name: string }>>(["cell", "ls"])
    expect(cells.map((entry) => entry.id)).not.toContain(cell.id)
    // Not merely hidden: the tombstoned row itself is gone.
    expect(queryDb(next.stateDir, "SELECT id FROM cells WHERE id = ?", cell.id), "the cell's row").toEqual([])
    expect(fs.existsSync(cell.dir), "the cell dir").toBe(false)
    expect(await awaitNoMarked(marker), "processes of the cell's job").toEqual([])
    expect(pidAlive(job.pid!)).toBe(false)
    expect(await statusOf(next, job.id)).toMatchObject({ status: "exited" })
    expect((await next.json(["health"])).running_jobs).toBe(0)
    // The name is free again.
    await createCell(next, "doomed")
  }, TIMEOUT)
})

describe("one daemon per state dir", () => {
  it("a second planterd on the same state dir with another socket is refused and names the first", async () => {
    const first = await startIn(UNSANDBOXED)
    const otherSocket = path.join(makeTempDir(), "second.sock")
    const second = await startDaemonExpectingRefusal({
      stateDir: first.stateDir,
      socketPath: otherSocket,
      args: UNSANDBOXED.args
    })
    expect(second.code, second.output).not.toBe("answered")
    expect(second.code, second.output).not.toBe(0)
    const refusal = second.output.split("\n").find((line) => line.startsWith("planterd:")) ?? ""
    expect(refusal, second.output).toContain(`pid ${first.pid}`)
    expect(refusal).toContain(first.socketPath)
    expect(refusal).toContain("--state-dir")
    expect(fs.existsSync(otherSocket), "the refused daemon's socket").toBe(false)

    // The first keeps serving, from the same state.
    expect(await first.json(["health"])).toMatchObject({ ok: true, pid: first.pid })
    await createCell(first, "still-here")
    expect((await first.json<Array<{ name: string }>>(["cell", "ls"])).map((cell) => cell.name)).toContain("still-here")
  }, TIMEOUT)
})

describe("leftovers of jobs killed while no daemon ran", () => {
  /** SIGKILLs the processes (a snapshot taken first), in the order given, and waits until they are gone. */
  const killAll = async (pids: ReadonlyArray<number>) => {
    for (const pid of pids) killQuietly(pid)
    await waitFor(`${pids.join(", ")} to die`, () => pids.every((pid) => !pidAlive(pid)))
  }

  it(
    "unsandboxed: the whole tree killed from outside; after restart its TMPDIR is gone and the job is lost",
    async () => {
      const crashed = await startIn(UNSANDBOXED)
      const cell = await createCell(crashed, "leftover")
      const marker = newMarker("leftover")
      const job = await runScript(crashed, cell.name, `touch "$TMPDIR/scratch"; echo ready; sleep 300`, marker)
      // `ready` is written after the scratch file: wait for it, or the kill can land between the two.
      await waitFor("the job to say ready", () => readIfExists(stdoutLog(crashed, job.id)) === "ready\n")
      expect(fs.existsSync(path.join(tmpDirOf(crashed, job.id), "scratch")), "the scratch file in TMPDIR").toBe(true)
      await crashed.stop("SIGKILL")
      await killAll(processTree(job.pid!).map((member) => member.pid))

      const next = await startIn(UNSANDBOXED, { stateDir: crashed.stateDir })
      expect(await statusOf(next, job.id)).toMatchObject({
        status: "exited",
        termination_reason: "lost",
        exit_code: null
      })
      expect(fs.existsSync(tmpDirOf(next, job.id)), "the job's TMPDIR").toBe(false)
      expect(fs.existsSync(statusFileOf(next, job.id)), "the job's status file").toBe(false)
      expect(readIfExists(stdoutLog(next, job.id)), "its log is kept").toBe("ready\n")
    },
    TIMEOUT
  )

  itSandboxed(
    "bubblewrap: killed with its launcher the job is lost; its own processes killed, bwrap records 137; TMPDIRs gone",
    async () => {
      const crashed = await startIn(BUBBLEWRAP)
      const cell = await createCell(crashed, "leftover")
      const script = `touch "$TMPDIR/scratch"; echo ready; sleep 300`
      const whole = await runScript(crashed, cell.name, script, newMarker("whole"))
      const inner = await runScript(crashed, cell.name, script, newMarker("inner"))
      for (const job of [whole, inner]) {
        await waitFor(
          "the scratch file in TMPDIR",
          () => fs.existsSync(path.join(tmpDirOf(crashed, job.id), "scratch"))
        )
      }
      await crashed.stop("SIGKILL")

      // The launcher first: it can write no exit status, so nothing tells how the job ended.
      await killAll(processTree(whole.pid!).map((member) => member.pid))
      // Only the job's own processes (not the launcher, not the namespace's init): the launcher records their end.
      const tree = processTree(inner.pid!).map((member) => member.pid)
      const init = tree.filter((pid) => pid !== inner.pid && Number(statFields(pid)[1]) === inner.pid)
      expect(init, "the namespace's init, the launcher's one child").toHaveLength(1)
      const own = tree.filter((pid) => pid !== inner.pid && !init.includes(pid))
      expect(own.length, "the job's own processes inside the sandbox").toBeGreaterThan(0)
      await killAll(own)
      await waitFor("the launcher to exit", () => !pidAlive(inner.pid!))

      const next = await startIn(BUBBLEWRAP, { stateDir: crashed.stateDir })
      expect(await statusOf(next, whole.id)).toMatchObject({
        status: "exited",
        termination_reason: "lost",
        exit_code: null
      })
      // bubblewrap records the SIGKILL as 128+9; it is reported as the signal, as for an unsandboxed job.
      expect(await statusOf(next, inner.id)).toMatchObject({
        status: "exited",
        termination_reason: "exited",
        exit_code: null,
        signal: "SIGKILL"
      })
      for (const job of [whole, inner]) {
        expect(fs.existsSync(tmpDirOf(next, job.id)), `the TMPDIR of ${job.id}`).toBe(false)
        expect(fs.existsSync(statusFileOf(next, job.id)), `the status file of ${job.id}`).toBe(false)
      }
    },
    TIMEOUT
  )
})

/**
 * The state dir on a 16 MiB tmpfs, filled to the last block by the test.
 * Why ENOSPC and not a read-only remount: `mount -o remount,ro` (of the
 * tmpfs, or of a bind mount the daemon opened the state through) fails with
 * EBUSY while the daemon holds the database open for writing, and a
 * read-only bind mounted over it afterwards does not affect descriptors
 * already open. ENOSPC is deterministic: the daemon's WAL only grows (it
 * starts empty, and no checkpoint resets it in a test this short), and every
 * commit appends at least one 4120-byte frame, which needs a fresh page.
 */
describe("a full disk", () => {
  /** Writes a filler file until the file system has not one byte left. */
  const fillUp = (file: string) => {
    const fd = fs.openSync(file, "w")
    try {
      for (const size of [1 << 20, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size, 0x55)
        for (;;) {
          try {
            if (fs.writeSync(fd, chunk) < size) break
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOSPC") break
            throw error
          }
        }
      }
    } finally {
      fs.closeSync(fd)
    }
  }

  /** How long a call that must not hang gets on the full disk. */
  const BOUND_MS = 8_000

  it(
    "job kill returns, health says degraded, a run is refused cleanly; once space is back the end is written",
    async (context) => {
      if (!isRoot) {
        console.warn("\n*** SKIPPING the disk-full test: mounting a tmpfs needs root. ***\n")
        return context.skip()
      }
      const mountDir = makeTempDir("planter-lt-disk-")
      const filler = path.join(mountDir, "filler")
      try {
        fs.chmodSync(mountDir, 0o700)
        const mounted = spawnSyncQuiet("mount", ["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", mountDir])
        if (mounted !== 0) throw new Error(`mount exited ${mounted}`)
      } catch (error) {
        console.warn(`\n*** SKIPPING the disk-full test: cannot mount a tmpfs on ${mountDir} (${String(error)}). ***\n`)
        return context.skip()
      }
      let daemon: TestDaemon | undefined
      diskCleanups.push(async () => {
        fs.rmSync(filler, { force: true })
        if (daemon !== undefined) await stopWithin(daemon, 15_000)
        for (const [pid, startTime] of leftoverProcesses()) if (startTimeOf(pid) === startTime) killQuietly(pid)
        await sleep(200)
        if (spawnSyncQuiet("umount", [mountDir]) !== 0) spawnSyncQuiet("umount", ["-l", mountDir])
      })

      const stateDir = path.join(mountDir, "state")
      fs.mkdirSync(stateDir, { mode: 0o700 })
      daemon = await startIn(UNSANDBOXED, { stateDir })
      const cell = await createCell(daemon, "full")
      const marker = newMarker("full")
      const job = await runScript(daemon, cell.name, "echo ready; sleep 300", marker)
      await waitFor("the job's output", () => readIfExists(stdoutLog(daemon!, job.id)) === "ready\n")

      fillUp(filler)
      expect(fs.statfsSync(mountDir).bavail, "free blocks on the tmpfs").toBe(0)
      const files = () => ({
        logs: listDir(path.join(stateDir, "logs")),
        tmp: listDir(path.join(stateDir, "tmp")),
        run: listDir(path.join(stateDir, "run"))
      })

      // The end cannot be written: the kill must still return, with the ended record.
      const kill = await cliWithin(daemon, ["--json", "job", "kill", job.id], BOUND_MS)
      expect.soft(kill.timedOut, "planter job kill hung on a full disk").toBe(false)
      expect.soft(kill.code, kill.stdout + kill.stderr).toBe(0)
      if (kill.code === 0) {
        expect.soft(JSON.parse(kill.stdout)).toMatchObject({
          status: "exited",
          termination_reason: "terminated_by_user"
        })
      }
      expect.soft(await awaitNoMarked(marker), "processes of the killed job").toEqual([])

      const health = await daemon.json(["health"])
      expect.soft(health, "health while the end is not on disk").toMatchObject({
        ok: false,
        degraded: expect.stringMatching(/no space left on device/)
      })
      const held = await cliWithin(daemon, ["--json", "job", "status", job.id], BOUND_MS)
      expect.soft(
        held.timedOut || held.code !== 0 ? held : JSON.parse(held.stdout),
        "job status shows the ended record"
      ).toMatchObject({
        status: "exited",
        termination_reason: "terminated_by_user"
      })

      // A new job on the full disk is refused in one line, and leaves nothing behind.
      const filesBefore = files()
      const refused = await cliWithin(daemon, ["run", cell.name, "--", "sh", "-c", `echo never ${marker}`], BOUND_MS)
      expect.soft(refused.timedOut, "planter run hung on a full disk").toBe(false)
      expect.soft(refused.code, refused.stdout + refused.stderr).toBe(1)
      expect.soft(refused.stderr.trim().split("\n"), "one line saying why").toEqual([
        expect.stringContaining("no space left on device")
      ])
      expect.soft(files(), "log, TMPDIR and status files after the refused run").toEqual(filesBefore)

      // Space again: the held end is written within a few seconds.
      fs.rmSync(filler)
      let healthy: { ok?: boolean } = {}
      try {
        await waitFor("health to be ok again", async () => {
          healthy = await daemon!.json(["health"])
          return healthy.ok === true
        }, 15_000)
      } catch {
        // Reported just below.
      }
      expect.soft(healthy, "health once space is back").toMatchObject({ ok: true, degraded: null })
      const status = await cliWithin(daemon, ["--json", "job", "status", job.id], BOUND_MS)
      expect.soft(status.code === 0 ? JSON.parse(status.stdout) : status, "job status once space is back")
        .toMatchObject({
          status: "exited",
          termination_reason: "terminated_by_user"
        })

      // It was written: a restarted daemon reads the same record.
      expect(await stopWithin(daemon, 15_000), "the daemon stops on SIGTERM").not.toBe("hung")
      daemon = await startIn(UNSANDBOXED, { stateDir })
      expect(await statusOf(daemon, job.id)).toMatchObject({
        status: "exited",
        termination_reason: "terminated_by_user"
      })
    },
    TIMEOUT
  )
})

describe("pid reuse", () => {
  const NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"

  /** Spawns a detached `sleep 300` (its own session and group) that gets exactly `pid`, or undefined when the kernel gives another. */
  const spawnStrangerAt = async (pid: number) => {
    const sleepBin = onPath("sleep") ?? "/bin/sleep"
    for (let attempt = 0; attempt < 50; attempt++) {
      if (fs.existsSync(`/proc/${pid}`)) return undefined // Somebody else took it.
      fs.writeFileSync(NS_LAST_PID, String(pid - 1))
      // detached: the child calls setsid() before exec, so the stranger leads a group and session numbered `pid`.
      // (Not `setsid sleep`: setsid(1) forks when it already leads a group, and the stranger would get pid + 1.)
      const child = spawn(sleepBin, ["300"], { detached: true, stdio: "ignore" })
      child.unref()
      if (child.pid === pid) return child
      if (child.pid !== undefined) {
        child.kill("SIGKILL")
        await new Promise((resolve) => child.once("exit", resolve))
      }
    }
    return undefined
  }

  it("a stranger that reused a lost job's pid is never signalled", async (context) => {
    if (!isRoot) {
      console.warn("\n*** SKIPPING the pid-reuse test: writing ns_last_pid needs root. ***\n")
      return context.skip()
    }
    // Other tests spawn processes too and may take the freed pid first: try
    // again with a fresh job (and pid) a few times before giving up.
    let found: { crashed: TestDaemon; job: Job; pid: number } | undefined
    for (let attempt = 0; attempt < 5 && found === undefined; attempt++) {
      const crashed = await startIn(UNSANDBOXED)
      await createCell(crashed, "reuse")
      const job = await crashed.json<Job>(["run", "reuse", "--", "sleep", "300"])
      const pid = job.pid!
      expect(startTimeOf(pid)).toBe(job.pid_start_time)
      await crashed.stop("SIGKILL")
      // The job dies while no daemon runs; init reaps it and the pid is free.
      killQuietly(pid)
      await waitFor(`/proc/${pid} to be gone`, () => !fs.existsSync(`/proc/${pid}`))
      let stranger: Awaited<ReturnType<typeof spawnStrangerAt>>
      try {
        stranger = await spawnStrangerAt(pid)
      } catch (error) {
        console.warn(
          `\n*** SKIPPING the pid-reuse test: cannot steer pid allocation through ${NS_LAST_PID} (${
            String(error)
          }). ***\n`
        )
        return context.skip()
      }
      if (stranger !== undefined) found = { crashed, job, pid }
    }
    if (found === undefined) {
      console.warn(
        "\n*** SKIPPING the pid-reuse test: other processes kept taking the freed pid before the stranger, 5 times. ***\n"
      )
      return context.skip()
    }
    const { crashed, job, pid } = found
    const strangerStart = startTimeOf(pid)!
    strangers.set(pid, strangerStart)
    try {
      expect(strangerStart, "the stranger is another process than the job").not.toBe(job.pid_start_time)
      // It leads a group numbered like the job's: a signal to the job's group would hit it.
      expect(Number(statFields(pid)[2])).toBe(pid)

      const next = await startIn(UNSANDBOXED, { stateDir: crashed.stateDir })
      expect(await statusOf(next, job.id)).toMatchObject({ status: "exited", termination_reason: "lost" })
      expect(pidAlive(pid) && startTimeOf(pid) === strangerStart, "the stranger after the restart").toBe(true)

      const killed = await cliWithin(next, ["--json", "job", "kill", job.id], 15_000)
      expect(killed.code, killed.stdout + killed.stderr).toBe(0)
      expect(JSON.parse(killed.stdout)).toMatchObject({ status: "exited", termination_reason: "lost" })
      // Past a tree-tracker interval too.
      await sleep(1_000)
      expect(pidAlive(pid) && startTimeOf(pid) === strangerStart, "the stranger after job kill").toBe(true)
      expect((await next.json(["health"])).running_jobs).toBe(0)
    } finally {
      if (startTimeOf(pid) === strangerStart) killQuietly(pid)
    }
  }, TIMEOUT)
})

describe("unsandboxed escape", () => {
  it("a child that setsids and whose parent exits at once still dies with job kill", async () => {
    const daemon = await startIn(UNSANDBOXED)
    const cell = await createCell(daemon, "escape")
    const marker = newMarker("escapee")
    // The escapee runs sleep under a name that is the marker, so the marker stays on its command line after
    // exec (a `# marker` comment in `sh -c "exec sleep 300 # marker"` vanishes with the exec).
    fs.symlinkSync(onPath("sleep") ?? "/bin/sleep", path.join(cell.dir, marker))
    const job = await daemon.json<Job>([
      "run",
      cell.name,
      "--",
      "sh",
      "-c",
      `(setsid sh -c "exec ./${marker} 300" &); exec sleep 300`
    ])

    let escapee = 0
    await waitFor("the escapee to run in a session of its own, its parent gone", () => {
      const found = processesWithMarker(marker)
      if (found.length !== 1) return false
      escapee = found[0]!.pid
      try {
        const fields = statFields(escapee)
        const [ppid, pgid, session] = [Number(fields[1]), Number(fields[2]), Number(fields[3])]
        const inTree = processTree(job.pid!).some((member) => member.pid === escapee)
        return session === escapee && pgid === escapee && !inTree && ppid !== job.pid
      } catch {
        return false // It exited while we looked.
      }
    }, 20_000)
    // It escaped: not in the job's group, not a descendant of its leader.
    expect(processTree(job.pid!).map((member) => member.pid)).not.toContain(escapee)

    expect(await daemon.json(["job", "kill", job.id])).toMatchObject({
      status: "exited",
      termination_reason: "terminated_by_user"
    })
    expect(await awaitNoMarked(marker), "the escapee after job kill").toEqual([])
    expect(pidAlive(job.pid!)).toBe(false)
  }, TIMEOUT)
})
