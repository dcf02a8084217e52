import { Deferred, Effect, FiberMap, Layer, Option, Schedule } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Conflict, Internal, InvalidRequest, NotFound, SandboxUnavailable } from "../rpc/Errors.js"
import type { CellId, JobId } from "../rpc/Ids.js"
import type { Cell, TerminationReason } from "../rpc/Models.js"
import { Job, JobCommand } from "../rpc/Models.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import type { RunRequest } from "../services/JobSupervisor.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import { killTree } from "../services/KillTree.js"
import { logFileName } from "../services/LogReader.js"
import type { KnownMembers } from "../services/ProcessProbe.js"
import { isRunning, ProcessProbe, treeMembers } from "../services/ProcessProbe.js"
import type { ProcessExit } from "../services/SandboxRunner.js"
import { SandboxRunner } from "../services/SandboxRunner.js"
import type { JournalEvent } from "../services/StateRepository.js"
import { StateRepository } from "../services/StateRepository.js"
import { stateToInternal } from "./ErrorMapping.js"

/** The environment every job starts from, before its cell's and its own variables. */
const baseEnv = (cellDir: string, tmpDir: string): Record<string, string> => ({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: cellDir,
  TMPDIR: tmpDir,
  LANG: "C.UTF-8"
})

interface RunningJob {
  readonly job: Job
  readonly finished: Deferred.Deferred<Job>
  /** Every member of the tree seen so far, so the sweep finds those that left its group. */
  readonly known: KnownMembers
  /** Set by the first kill, so the exit is recorded with why it happened. */
  killReason: TerminationReason | null
}

/** How often the members of unsandboxed jobs' trees are recorded. */
const TREE_TRACK_INTERVAL = "500 millis"

const newJobId = () => `job-${Date.now().toString(36)}${randomBytes(5).toString("hex")}` as JobId

/** `cwd` resolved inside the cell dir; anything that leaves it (`..`, symlinks) is refused. */
const resolveCwd = (cellDir: string, cwd: string | null): string | InvalidRequest => {
  let cellReal: string
  try {
    cellReal = fs.realpathSync(cellDir)
  } catch {
    return new InvalidRequest({ message: `the cell's directory ${cellDir} is gone: remove the cell and create it again` })
  }
  if (cwd === null || cwd === "") return cellDir
  let real: string
  try {
    real = fs.realpathSync(path.resolve(cellDir, cwd))
  } catch {
    return new InvalidRequest({ message: `--cwd ${cwd} does not exist inside the cell dir ${cellDir}: create it first or pick another` })
  }
  if (real !== cellReal && !real.startsWith(cellReal + path.sep)) {
    return new InvalidRequest({ message: `--cwd ${cwd} is outside the cell dir ${cellDir}: a job's working directory must stay inside its cell` })
  }
  if (!fs.statSync(real).isDirectory()) return new InvalidRequest({ message: `--cwd ${cwd} is not a directory` })
  // Expressed under the cell dir as the sandbox mounts it, even where the state dir's path has symlinks.
  return path.join(cellDir, path.relative(cellReal, real))
}

const finishEvent = (job: Job, reason: TerminationReason, detail: Record<string, unknown>): JournalEvent => ({
  kind: reason === "exited" ? "job_exited" : reason === "lost" ? "job_lost" : "job_killed",
  cell_id: job.cell_id,
  job_id: job.id,
  detail: { termination_reason: reason, ...detail }
})

export const make = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const repo = yield* StateRepository
  const sandbox = yield* SandboxRunner
  const probe = yield* ProcessProbe
  const paths = statePaths(config.stateDir)
  const running = new Map<JobId, RunningJob>()
  const fibers = yield* FiberMap.make<JobId>()

  const sweepTree = (pid: number, force: boolean, known?: KnownMembers) =>
    killTree(pid, { force, grace: config.killGrace, ...(known ? { known } : {}) }).pipe(
      Effect.provideService(ProcessProbe, probe)
    )

  const record = (entry: RunningJob, exit: ProcessExit, reason: TerminationReason, detail: Record<string, unknown> = {}) =>
    repo.finishJob(
      entry.job.id,
      { exit_code: exit.code, signal: exit.signal, termination_reason: reason, finished_at_ms: Date.now() },
      finishEvent(entry.job, reason, { exit_code: exit.code, signal: exit.signal, ...detail })
    ).pipe(
      Effect.flatMap((job) => Deferred.succeed(entry.finished, Option.getOrElse(job, () => entry.job))),
      Effect.catchAll((error) => Effect.logError(`cannot record the end of ${entry.job.id}`, error)),
      Effect.ensuring(Effect.sync(() => {
        running.delete(entry.job.id)
        // The private TMPDIR dies with the job; its cell dir is what persists.
        try {
          fs.rmSync(path.join(paths.tmp, entry.job.id), { recursive: true, force: true })
        } catch {
          // Leftover temp files cost disk space only; the record is what matters.
        }
      }))
    )

  /**
   * Waits for the leader to exit, then clears whatever of its tree is left
   * (a job is over when its leader is, and nothing it started may outlive
   * it unsupervised), then records the result. Interrupted by daemon
   * shutdown, it kills the tree first, unless jobs are kept for adoption.
   */
  const supervise = (entry: RunningJob, exit: Effect.Effect<ProcessExit>, pid: number, unknownExitDetail?: string) =>
    Effect.gen(function*() {
      const result = yield* exit
      yield* sweepTree(pid, false, entry.known)
      yield* record(entry, result, entry.killReason ?? "exited", unknownExitDetail ? { note: unknownExitDetail } : {})
    }).pipe(
      Effect.onInterrupt(() =>
        config.keepJobs
          ? Effect.logInfo(`leaving ${entry.job.id} running for the next daemon to adopt`)
          : Effect.gen(function*() {
            entry.killReason ??= "daemon_shutdown"
            yield* sweepTree(pid, false, entry.known)
            // The tree is gone, so the leader's exit is at hand; record how it ended.
            const result = yield* exit.pipe(
              Effect.timeoutTo({ duration: "1 second", onSuccess: (r) => r, onTimeout: () => ({ code: null, signal: null }) })
            )
            yield* record(entry, result, entry.killReason)
          })
      ),
      Effect.withSpan("JobSupervisor.supervise", { attributes: { jobId: entry.job.id, pid } })
    )

  const track = (job: Job, exit: Effect.Effect<ProcessExit>, pid: number, unknownExitDetail?: string) =>
    Effect.gen(function*() {
      const entry: RunningJob = {
        job,
        finished: yield* Deferred.make<Job>(),
        known: new Map(job.pid_start_time === null ? [] : [[pid, job.pid_start_time]]),
        killReason: null
      }
      running.set(job.id, entry)
      yield* FiberMap.run(fibers, job.id, supervise(entry, exit, pid, unknownExitDetail))
    })

  /** Polls an adopted process, which is not our child, until it is gone. */
  const pollExit = (pid: number, startTime: string | null): Effect.Effect<ProcessExit> =>
    Effect.gen(function*() {
      while (isRunning(yield* probe.entry(pid), startTime)) yield* Effect.sleep("100 millis")
      return { code: null, signal: null }
    })

  // A job recorded as running belongs to a daemon that crashed or kept its
  // jobs: adopt it if the very same process is still alive, else mark it lost.
  for (const job of yield* repo.listRunningJobs) {
    const entry = job.pid === null ? undefined : yield* probe.entry(job.pid)
    if (job.pid !== null && isRunning(entry, job.pid_start_time)) {
      yield* repo.appendEvent({ kind: "job_adopted", cell_id: job.cell_id, job_id: job.id, detail: { pid: job.pid } })
      yield* track(job, pollExit(job.pid, job.pid_start_time), job.pid, "exit status unknown: the job was adopted after a daemon restart")
    } else {
      yield* repo.finishJob(
        job.id,
        { exit_code: null, signal: null, termination_reason: "lost", finished_at_ms: Date.now() },
        finishEvent(job, "lost", { note: "the job's process was gone when the daemon started" })
      )
    }
  }

  // Unsandboxed jobs have no PID namespace to hold their tree together: a
  // child that calls setsid and outlives its parent would escape the sweep.
  // One process-table snapshot per interval records every member while it
  // is still reachable from the leader. (bubblewrap jobs need none of this.)
  yield* Effect.gen(function*() {
    const unsandboxed = [...running.values()].filter((entry) => entry.job.sandbox.backend === "none")
    if (unsandboxed.length === 0) return
    const snapshot = yield* probe.snapshot
    for (const entry of unsandboxed) treeMembers(snapshot, entry.job.pid!, entry.known)
  }).pipe(
    Effect.withSpan("JobSupervisor.trackTrees"),
    Effect.repeat(Schedule.spaced(TREE_TRACK_INTERVAL)),
    Effect.forkScoped
  )

  const run = Effect.fn("JobSupervisor.run")(function*(cell: Cell, request: RunRequest) {
    const [program, ...args] = request.argv
    const cwd = resolveCwd(cell.dir, request.cwd)
    if (cwd instanceof InvalidRequest) return yield* cwd
    const id = newJobId()
    yield* Effect.annotateCurrentSpan({ jobId: id, cellId: cell.id })
    const tmpDir = path.join(paths.tmp, id)
    const network = request.network ?? cell.network
    const env = { ...baseEnv(cell.dir, tmpDir), ...cell.env, ...request.env }

    const started = yield* Effect.acquireUseRelease(
      Effect.try({
        try: () => {
          fs.mkdirSync(tmpDir, { recursive: true, mode: 0o700 })
          const stdout = fs.openSync(path.join(paths.logs, logFileName(id, "stdout")), "w", 0o600)
          try {
            return { stdout, stderr: fs.openSync(path.join(paths.logs, logFileName(id, "stderr")), "w", 0o600) }
          } catch (error) {
            fs.closeSync(stdout)
            throw error
          }
        },
        // A full disk or a state dir made read-only: the daemon stays up and says why.
        catch: (error) => new Internal({ message: `cannot prepare the job's log files under ${paths.logs}: ${String(error)}` })
      }),
      (fds) =>
        sandbox.start({
          jobId: id,
          argv: [program, ...args],
          cwd,
          env,
          cellDir: cell.dir,
          tmpDir,
          readPaths: cell.read_paths,
          network,
          stdoutFd: fds.stdout,
          stderrFd: fds.stderr
        }),
      // The child holds its own copies; the daemon keeps none open.
      (fds) => Effect.sync(() => [fds.stdout, fds.stderr].forEach((fd) => fs.closeSync(fd)))
    ).pipe(
      Effect.tapError((error) =>
        Effect.zipRight(
          // A job that never started leaves no files behind, only its journal entry.
          Effect.sync(() => {
            for (const file of [path.join(paths.logs, logFileName(id, "stdout")), path.join(paths.logs, logFileName(id, "stderr")), tmpDir]) {
              try {
                fs.rmSync(file, { recursive: true, force: true })
              } catch {
                // Whatever made the start fail may stop the clean-up too; the error to report is the first.
              }
            }
          }),
          stateToInternal(repo.appendEvent({
            kind: "job_start_failed",
            cell_id: cell.id,
            job_id: id,
            detail: { argv: request.argv, reason: error.message }
          }))
        ).pipe(Effect.ignore)
      ),
      Effect.catchTags({
        SandboxStartError: (error) => new SandboxUnavailable({ message: error.message }),
        SpawnError: (error) => new InvalidRequest({ message: error.message })
      })
    )

    const startTime = (yield* probe.entry(started.pid))?.startTime ?? null
    const job = new Job({
      id,
      cell_id: cell.id,
      command: new JobCommand({ argv: [program, ...args], cwd, env: request.env, limits: null }),
      status: "running",
      exit_code: null,
      signal: null,
      termination_reason: null,
      pid: started.pid,
      pid_start_time: startTime,
      started_at_ms: Date.now(),
      finished_at_ms: null,
      sandbox: started.sandbox
    })
    yield* repo.insertJob(job).pipe(
      // Never leave a process running that no record knows about.
      Effect.tapError(() => sweepTree(started.pid, true)),
      stateToInternal
    )
    if (started.sandbox.fallback_reason !== null) {
      yield* stateToInternal(repo.appendEvent({
        kind: "job_sandbox_fallback",
        cell_id: cell.id,
        job_id: id,
        detail: { reason: started.sandbox.fallback_reason }
      }))
    }
    yield* track(job, started.exit, started.pid)
    return job
  },
  // From spawn to supervision nothing may interrupt it: a shutdown or a
  // client hanging up midway would leave a process no record knows about.
  Effect.uninterruptible)

  const get = (id: JobId) =>
    repo.getJob(id).pipe(
      stateToInternal,
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new NotFound({ message: `no job ${id}: list jobs with \`planter job ls\`` })),
        onSome: Effect.succeed
      }))
    )

  const kill = Effect.fn("JobSupervisor.kill")(function*(id: JobId, options: { readonly force: boolean }) {
    const entry = running.get(id)
    if (entry === undefined) return yield* get(id)
    entry.killReason ??= options.force ? "forced_kill" : "terminated_by_user"
    yield* sweepTree(entry.job.pid!, options.force, entry.known)
    return yield* Deferred.await(entry.finished)
  })

  const stopCell = Effect.fn("JobSupervisor.stopCell")(function*(cellId: CellId, options: { readonly force: boolean }) {
    const jobs = [...running.values()].filter((entry) => entry.job.cell_id === cellId)
    if (jobs.length === 0) return
    if (!options.force) {
      return yield* new Conflict({
        message: `cell ${cellId} has ${jobs.length} running job(s) (${jobs.map((entry) => entry.job.id).join(", ")}): kill them first, or remove with --force to kill them`
      })
    }
    yield* Effect.forEach(
      jobs,
      // A job that finished meanwhile is already what --force wanted.
      (entry) => kill(entry.job.id, { force: true }).pipe(Effect.catchTag("NotFound", () => Effect.void)),
      { concurrency: "unbounded", discard: true }
    )
  })

  return JobSupervisor.of({
    run,
    get,
    list: (cellId) => stateToInternal(repo.listJobs(cellId)),
    kill,
    stopCell,
    isRunning: (id) => running.has(id),
    awaitFinished: (id) => {
      const entry = running.get(id)
      return entry === undefined ? Effect.void : Effect.asVoid(Deferred.await(entry.finished))
    },
    runningCount: Effect.sync(() => running.size)
  })
})

export const layer = Layer.scoped(JobSupervisor, make)
