import {
  Cause,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberMap,
  FiberRef,
  HashMap,
  Layer,
  Option,
  Ref,
  Tracer
} from "effect"
import { randomBytes } from "node:crypto"
import type { Writable } from "node:stream"
import type { CellId, JobId } from "../rpc/Ids.js"
import type { Cell, LimitDetail, TerminationReason } from "../rpc/Models.js"
import { Job, JobCommand, JobPage, JobSandbox } from "../rpc/Models.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { DaemonFault, InvalidInput, SandboxRefused, StateConflict, UnknownEntity } from "../services/DomainErrors.js"
import { hotSpan } from "../services/HotSpan.js"
import type { JobStdinPipe, RunningJob } from "../services/JobRegistry.js"
import { JobRegistry } from "../services/JobRegistry.js"
import type { LimitReason, RunRequest } from "../services/JobSupervisor.js"
import { effectiveNetwork, JobSupervisor } from "../services/JobSupervisor.js"
import { killTree } from "../services/KillTree.js"
import type { Limits } from "../services/Limits.js"
import { checkLimits, DEFAULT_MAX_LOG_BYTES, effectiveLimits, fromStored } from "../services/Limits.js"
import { encodeCursor, pageOf } from "../services/Paging.js"
import { isRunning, JOB_MARKER_ENV, ProcessProbe } from "../services/ProcessProbe.js"
import type { ProcessExit } from "../services/SandboxRunner.js"
import { SandboxRunner } from "../services/SandboxRunner.js"
import type { StateError } from "../services/StateRepository.js"
import { StateRepository } from "../services/StateRepository.js"
import { crashPoint } from "./CrashPoints.js"
import { END_DEFERRAL_MAX_MS, makeEndDeferral } from "./EndDeferral.js"
import { resolveCwd } from "./JobCwd.js"
import { makeJobEnds } from "./JobEnds.js"
import type { JobFiles } from "./JobFiles.js"
import {
  jobFiles,
  jobFilesFault,
  prepareTmpDir,
  readLauncherExit,
  removeAllJobFiles,
  removeJobLeftovers
} from "./JobFiles.js"
import { makeReadGrantPolicy } from "./ReadGrants.js"
import { makeTmpDirPool } from "./TmpDirPool.js"

/**
 * Whether an ended job's TMPDIR may become the next job's (TmpDirPool): only when none of the job's processes
 * can have outlived it. Under bubblewrap the job's PID namespace ends with it, every process in it killed by
 * the kernel; without a sandbox a descendant that left the job's group and cleared its marker can survive the
 * kill, keep the directory as its cwd or an open descriptor, and would write into the next job's TMPDIR.
 */
const recyclesTmpDir = (job: Job) => job.sandbox.backend === "bubblewrap"

/** The environment every job starts from, before its cell's and its own variables. */
const baseEnv = (id: JobId, cellDir: string, tmpDir: string): Record<string, string> => ({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: cellDir,
  TMPDIR: tmpDir,
  LANG: "C.UTF-8",
  // Names the job to itself, and marks every process it starts (see ProcessProbe.markedBy).
  [JOB_MARKER_ENV]: id
})

const newJobId = () => `job-${Date.now().toString(36)}${randomBytes(5).toString("hex")}` as JobId

/** bubblewrap jobs are led by the launcher, whose child is the namespace's init: see KillTree. */
const isSandboxLauncher = (job: Job) => job.sandbox.backend === "bubblewrap"

const UNKNOWN_EXIT: ProcessExit = { code: null, signal: null }

/**
 * The daemon's end of a job's stdin pipe. A job that exits or closes its
 * stdin makes writes fail (EPIPE): that is answered to the writer, never
 * an unhandled error in the daemon.
 */
const stdinPipe = (stream: Writable | null): JobStdinPipe | null => {
  if (stream === null) return null
  stream.on("error", () => {})
  return {
    write: (data) =>
      Effect.async<void, string>((resume) => {
        if (stream.writableEnded || stream.destroyed) return resume(Effect.fail("its stdin is closed"))
        stream.write(
          data,
          (error) => resume(error ? Effect.fail(`its stdin is closed (${error.message})`) : Effect.void)
        )
      }),
    close: Effect.async<void>((resume) => {
      if (stream.writableEnded || stream.destroyed) return resume(Effect.void)
      stream.end(() => resume(Effect.void))
    }).pipe(Effect.timeoutTo({ duration: "1 second", onSuccess: () => undefined, onTimeout: () => stream.destroy() }))
  }
}

/** A job's attributes on its phase spans (the names OTLP backends search by). */
const jobAttributes = (job: Job) => ({
  "planter.job.id": job.id,
  "planter.cell.id": job.cell_id,
  "planter.sandbox.backend": job.sandbox.backend,
  ...(job.pid === null ? {} : { pid: job.pid })
})

/**
 * What `planter debug fibers` and JSON log lines say of a job's fiber. Set
 * afresh, not added: the fiber is forked by the request that started the
 * job, whose labels (its RPC, its client's pid) are not the job's.
 */
const asJobFiber = (job: { readonly id: JobId; readonly cell_id: CellId }) =>
  Effect.locally(
    FiberRef.currentLogAnnotations,
    HashMap.make(["planter.fiber", "job"], ["planter.job.id", job.id], ["planter.cell.id", job.cell_id])
  )

/**
 * A job's fiber runs with nothing in its context but the span it descends from: everything it uses was taken
 * from the context when the supervisor was built. Each span, transaction and `provideService` along a job's
 * life copies the fiber's context, and the request's holds ~28 services (the daemon's layers, the connection's,
 * the Caller): ~15 copies a job were a fifth of what a start and end allocated.
 */
const jobContext = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.mapInputContext(effect, (context: Context.Context<never>) => Context.pick(Tracer.ParentSpan)(context))

type StartError = InvalidInput | SandboxRefused | StateConflict | DaemonFault | StateError

export const make = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const repo = yield* StateRepository
  const sandbox = yield* SandboxRunner
  const probe = yield* ProcessProbe
  const registry = yield* JobRegistry
  const paths = statePaths(config.stateDir)
  const scope = yield* Effect.scope
  // Closed after the job fibers (finalizers run last-added first): their ends may still recycle into it.
  const tmpDirs = makeTmpDirPool(paths.tmp, newJobId)
  yield* Effect.addFinalizer(() => Effect.sync(tmpDirs.close))
  const fibers = yield* FiberMap.make<JobId>()
  const ends = makeJobEnds(repo, scope)
  // Unsandboxed jobs' TMPDIRs are never recycled: new ones are made ahead of the starts, between bursts.
  const fillsTmpDirs = !(sandbox.status.available && sandbox.status.backend === "bubblewrap")
  const deferral = makeEndDeferral(
    END_DEFERRAL_MAX_MS,
    fillsTmpDirs ? () => tmpDirs.fill(deferral.busy) : undefined
  )
  const grants = makeReadGrantPolicy(config)

  /** Kills the job's tree; every signal is checked against its recorded identity first. */
  const sweep = (entry: RunningJob, force: boolean, grace: Duration.Duration = config.killGrace) =>
    killTree(entry.tree, {
      force,
      grace,
      sandboxLauncher: isSandboxLauncher(entry.job),
      ...(isSandboxLauncher(entry.job) ? {} : { markerJobId: entry.job.id })
    }).pipe(Effect.provideService(ProcessProbe, probe))

  /** The grace period of a kill for `reason`: a limit's own (--timeout-grace-ms …), else --kill-grace-ms. */
  const graceFor = (reason: TerminationReason): Duration.Duration => {
    switch (reason) {
      case "timeout":
      case "memory_limit":
      case "log_quota":
        return config.limitGrace?.[reason] ?? config.killGrace
      default:
        return config.killGrace
    }
  }

  /**
   * The end of a job's life, run when its scope closes: the leader exited,
   * or something closed it with a reason (kill, cell removal, shutdown).
   * The tree is killed with that reason (the first one set wins), the end
   * recorded, and its waiters released. A daemon stopping with
   * --keep-jobs leaves the tree running for the next daemon to adopt.
   * Its spans are the job's phases, job.kill and job.finish (no span of its own around them: 50 ends a burst).
   */
  const release = (
    entry: RunningJob,
    files: JobFiles,
    leaderExit: Effect.Effect<ProcessExit>,
    result: Exit.Exit<ProcessExit>,
    note?: string
  ) =>
    Effect.gen(function*() {
      const interrupted = Exit.isFailure(result) && Cause.isInterruptedOnly(result.cause)
      if (interrupted && config.keepJobs && (yield* Ref.get(entry.endReason)) === null) {
        yield* Effect.logInfo(`leaving ${entry.job.id} running for the next daemon to adopt`)
        return yield* registry.remove(entry.job.id, null)
      }
      const reason = yield* Ref.modify(entry.endReason, (current): [TerminationReason, TerminationReason | null] => {
        const chosen = current ?? (interrupted ? "daemon_shutdown" : "exited")
        return [chosen, chosen]
      })
      // A leader that exited by itself while other jobs are starting: its end waits for them (bounded), so the
      // starts are answered first and the ends that piled up meanwhile are swept together. A kill, a limit or a
      // shutdown is never held. The reason is set first: a kill arriving meanwhile finds the job exited.
      if (reason === "exited" && Exit.isSuccess(result)) yield* deferral.quiet
      yield* sweep(entry, false, graceFor(reason)).pipe(
        hotSpan("job.kill", { ...jobAttributes(entry.job), "planter.termination_reason": reason })
      )
      // With the tree gone the leader's exit is at hand.
      const exit = Exit.isSuccess(result)
        ? result.value
        : yield* leaderExit.pipe(
          Effect.timeoutTo({ duration: "1 second", onSuccess: (r) => r, onTimeout: () => UNKNOWN_EXIT })
        )
      const usage = entry.observed.usage
      const ended = yield* ends.record(entry.job, exit, reason, note ? { note } : {}, {
        peak_rss_bytes: usage?.peak_rss_bytes ?? null,
        cpu_ms: usage?.cpu_ms ?? null,
        limit_detail: entry.observed.limitDetail
      }).pipe(
        Effect.tap((job) =>
          Effect.annotateCurrentSpan({ "planter.exit_code": job.exit_code ?? -1, "planter.signal": job.signal ?? "" })
        ),
        hotSpan("job.finish", { ...jobAttributes(entry.job), "planter.termination_reason": reason })
      )
      yield* Effect.logDebug(
        `${ended.id} ended: ${reason}, exit code ${ended.exit_code ?? "none"}${
          ended.signal ? `, signal ${ended.signal}` : ""
        }`
      )
      if (entry.stdin) yield* entry.stdin.close
      yield* Deferred.succeed(entry.ended, ended)
      yield* registry.remove(entry.job.id, ended)
      // Only a launcher (bubblewrap) has a status file; it stays until the job's end is on disk.
      yield* removeJobLeftovers(files, {
        status: isSandboxLauncher(entry.job) && ends.held(entry.job.id) === undefined,
        profile: entry.job.sandbox.backend === "sandbox-exec"
      }, recyclesTmpDir(entry.job) ? tmpDirs.recycle : undefined)
    })

  /**
   * A job's life as a scope: acquire = start (or adopt) its tree and
   * register it, use = wait for its leader, release = end it. One fiber per
   * job in the FiberMap; closing it (kill, shutdown) runs the release.
   */
  const supervise = (
    acquire: Effect.Effect<
      { readonly entry: RunningJob; readonly exit: Effect.Effect<ProcessExit>; readonly note?: string },
      StartError
    >,
    files: JobFiles
  ) =>
    Effect.acquireUseRelease(
      Effect.tap(acquire, ({ entry }) => registry.add(entry)),
      ({ entry, exit }) => exit.pipe(hotSpan("job.supervise", jobAttributes(entry.job))),
      ({ entry, exit, note }, result) => release(entry, files, exit, result, note)
    )

  const newEntry = (job: Job, stdin: JobStdinPipe | null = null) =>
    Effect.all({ endReason: Ref.make<TerminationReason | null>(null), ended: Deferred.make<Job>() }).pipe(
      Effect.map(({ endReason, ended }): RunningJob => ({
        job,
        tree: { leaderPid: job.pid!, leaderStartTime: job.pid_start_time, known: new Map() },
        endReason,
        ended,
        observed: { usage: null, limitDetail: null },
        stdin
      }))
    )

  /**
   * Records the job (`starting`) before its process exists, starts it, then
   * records its pid and start time: a crash at any instant leaves either no
   * process or a row that the next start resolves. A refused start removes
   * what it created and says why.
   */
  const start = (
    cell: Cell,
    id: JobId,
    argv: readonly [string, ...Array<string>],
    cwd: string,
    request: RunRequest,
    limits: Limits,
    files: JobFiles,
    tmpExists: boolean,
    logsExist: boolean
  ) =>
    Effect.gen(function*() {
      const network = effectiveNetwork(cell.network, request.network)
      // Built unchecked (each class constructor's validation derives its type AST and a parser per call, ~0.1 ms a
      // job): its fields come from the request's decoded payload and the cell's record, and insertJob encodes the
      // row through the row schema, which checks every field before anything is written or started.
      const provisional = new Job({
        id,
        cell_id: cell.id,
        command: new JobCommand({ argv, cwd, env: request.env, limits: { ...limits } }, true),
        status: "starting",
        exit_code: null,
        signal: null,
        termination_reason: null,
        pid: null,
        pid_start_time: null,
        started_at_ms: Date.now(),
        finished_at_ms: null,
        sandbox: new JobSandbox({
          mode: sandbox.status.mode,
          backend: sandbox.status.available ? sandbox.status.backend : "none",
          network,
          fallback_reason: null
        }, true),
        owner_uid: request.owner_uid,
        name: request.name ?? null,
        labels: request.labels ?? {}
      }, true)
      // The TMPDIR is made on the thread pool while the row is written: a crash in between leaves an
      // empty TMPDIR without a row, which the next daemon's reconciler removes with the other leftovers.
      // A recycled TMPDIR (TmpDirPool) is there already. A start refused before its row was written goes back to
      // the pool under the same id, still unused; once the row (and so the id) is in the journal, the id is never
      // given to another job.
      const tmpReady = tmpExists ? undefined : yield* Effect.fork(prepareTmpDir(files))
      const removeFiles = removeAllJobFiles(files)
      yield* repo.insertJob(provisional).pipe(
        Effect.tapError(() =>
          Effect.zipRight(
            tmpReady === undefined ? Effect.void : Fiber.await(tmpReady),
            tmpExists ? removeAllJobFiles(files, () => tmpDirs.giveBack(id, logsExist)) : removeFiles
          )
        ),
        // Two runs of one name racing past run's check: the database's unique index refuses the second.
        Effect.catchIf(
          (error) => error.message.includes("UNIQUE constraint failed: jobs.cell_id, jobs.name"),
          () =>
            new StateConflict({
              message: `a job named ${request.name} is already running in cell ${cell.name}: choose another --name`
            })
        ),
        hotSpan("job.prepare", jobAttributes(provisional))
      )
      yield* crashPoint("job-recorded")
      const forget = (reason: string) =>
        Effect.zipRight(
          removeFiles,
          repo.deleteStartingJob(id, {
            kind: "job_start_failed",
            cell_id: cell.id,
            job_id: id,
            detail: { argv, reason }
          }).pipe(
            // The row stays `starting`; the next daemon start finishes it.
            Effect.catchAll((error) => Effect.logError(`cannot remove the record of ${id}, which did not start`, error))
          )
        )
      // A made-ahead TMPDIR holds the job's log files: moved into place now that the row is on disk.
      const logsPlaced = logsExist
        ? Effect.try({
          try: () => tmpDirs.takeLogs(id, files.stdout, files.stderr),
          catch: (error) => jobFilesFault(files, String(error))
        })
        : tmpReady === undefined
        ? Effect.void
        : Fiber.join(tmpReady)
      const started = yield* Effect.zipRight(
        logsPlaced,
        sandbox.start({
          jobId: id,
          argv,
          cwd,
          env: { ...baseEnv(id, cell.dir, files.tmp), ...cell.env, ...request.env },
          cellDir: cell.dir,
          tmpDir: files.tmp,
          readPaths: cell.read_paths,
          network,
          stdoutPath: files.stdout,
          stderrPath: files.stderr,
          statusPath: files.status,
          stdinPipe: request.stdin === true
        })
      ).pipe(
        Effect.catchTags({
          SandboxStartError: (error) => new SandboxRefused({ message: error.message }),
          SpawnError: (error) => new InvalidInput({ message: error.message }),
          OutputFilesError: (error) => jobFilesFault(files, error.message)
        }),
        Effect.tapError((error) => forget(error.message)),
        Effect.tap((process) =>
          Effect.annotateCurrentSpan({ pid: process.pid, "planter.sandbox.backend": process.sandbox.backend })
        ),
        hotSpan("job.sandbox_start", {
          ...jobAttributes(provisional),
          "planter.sandbox.mode": provisional.sandbox.mode
        })
      )
      yield* crashPoint("job-spawned")
      const startTime = (yield* probe.entry(started.pid))?.startTime ?? null
      // Derived from the checked record, with what the sandbox runner and /proc said: not checked again.
      const job = new Job({
        ...provisional,
        status: "running",
        pid: started.pid,
        pid_start_time: startTime,
        sandbox: started.sandbox
      }, true)
      const entry = yield* newEntry(job, stdinPipe(started.stdin))
      yield* repo.markJobRunning(id, { pid: started.pid, pid_start_time: startTime, sandbox: started.sandbox }).pipe(
        // Never leave a process running that no record knows about.
        Effect.tapError((error) => Effect.zipRight(sweep(entry, true), forget(error.message))),
        hotSpan("job.record", jobAttributes(job))
      )
      yield* crashPoint("job-running")
      if (started.sandbox.fallback_reason !== null) {
        yield* repo.appendEvent({
          kind: "job_sandbox_fallback",
          cell_id: cell.id,
          job_id: id,
          detail: { reason: started.sandbox.fallback_reason }
        }).pipe(
          Effect.catchAll((error) => Effect.logWarning(`cannot journal the sandbox fallback of ${id}`, error))
        )
      }
      return { entry, exit: started.exit }
    })

  const run = (cell: Cell, request: RunRequest) =>
    runJob(cell, request).pipe(deferral.starting, hotSpan("JobSupervisor.run"))

  const runJob = Effect.fnUntraced(function*(cell: Cell, request: RunRequest) {
    const [program, ...args] = request.argv
    const cwd = resolveCwd(cell.dir, request.cwd)
    if (cwd instanceof InvalidInput) return yield* cwd
    const changedGrant = grants.recheck(cell)
    if (changedGrant !== undefined) return yield* changedGrant
    const own = checkLimits(request.limits ?? null)
    if (!("timeout_ms" in own)) return yield* own
    const limits = effectiveLimits(fromStored(cell.limits), own, config.defaultMaxLogBytes ?? DEFAULT_MAX_LOG_BYTES)
    if (!("timeout_ms" in limits)) return yield* limits
    if (request.name != null) {
      // The database's unique index is the last word (two runs racing); this says it in words first.
      const named = yield* repo.findJobsByName(request.name)
      const running = named.find((job) => job.cell_id === cell.id && job.status !== "exited")
      if (running !== undefined) {
        return yield* new StateConflict({
          message:
            `a job named ${request.name} is already running in cell ${cell.name}: ${running.id}; kill it first (\`planter job kill ${request.name}\`) or choose another --name`
        })
      }
    }
    const { id, logsReady, tmpReady } = tmpDirs.take()
    yield* Effect.annotateCurrentSpan({ jobId: id, cellId: cell.id })
    const files = jobFiles(paths, id)
    const ready = yield* Deferred.make<Job, StartError>()
    // The job's fiber belongs to the daemon, not to this request: a client
    // that hangs up does not stop the start or leave a half-started job.
    yield* FiberMap.run(
      fibers,
      id,
      supervise(
        Effect.tap(
          start(cell, id, [program, ...args], cwd, request, limits, files, tmpReady, logsReady),
          ({ entry }) => Deferred.succeed(ready, entry.job)
        ),
        files
      ).pipe(
        Effect.catchAll((error) => Deferred.fail(ready, error)),
        // A defect must not leave the request waiting forever either.
        Effect.catchAllDefect((defect) =>
          Effect.zipRight(
            Effect.logError(`job ${id} failed to start`, defect),
            Deferred.fail(ready, new DaemonFault({ message: `job ${id} could not start: ${String(defect)}` }))
          )
        ),
        Effect.onInterrupt(() => Deferred.interrupt(ready)),
        hotSpan("job", { "planter.job.id": id, "planter.cell.id": cell.id }),
        asJobFiber({ id, cell_id: cell.id }),
        jobContext
      )
    )
    return yield* Deferred.await(ready)
  })

  /** Polls a process that is not our child (adopted after a restart) until it is gone. */
  const pollExit = (job: Job, files: JobFiles): Effect.Effect<ProcessExit> =>
    Effect.gen(function*() {
      while (isRunning(yield* probe.entry(job.pid!), job.pid_start_time)) yield* Effect.sleep("100 millis")
      return readLauncherExit(files) ?? UNKNOWN_EXIT
    })

  const adopt = Effect.fn("JobSupervisor.adopt")(function*(job: Job) {
    const files = jobFiles(paths, job.id)
    const entry = yield* newEntry(job)
    const note = isSandboxLauncher(job) ? undefined : "exit status unknown: the job was adopted after a daemon restart"
    yield* FiberMap.run(
      fibers,
      job.id,
      supervise(Effect.succeed({ entry, exit: pollExit(job, files), ...(note ? { note } : {}) }), files).pipe(
        // A fiber of the FiberMap that dies would otherwise vanish without a word.
        Effect.catchAllDefect((defect) => Effect.logError(`supervising the adopted job ${job.id} failed`, defect)),
        hotSpan("job", { ...jobAttributes(job), "planter.adopted": true }),
        asJobFiber(job),
        jobContext
      )
    )
  })

  /** A running job's record with the monitor's last sample of its usage. */
  const withUsage = (job: Job): Job => {
    if (job.status === "exited") return job
    const usage = Option.getOrUndefined(registry.get(job.id))?.observed.usage ?? null
    // A valid record with the monitor's sample (a JobUsage it built): not checked again on every status call.
    return usage === null ? job : new Job({ ...job, usage }, true)
  }

  const get = (id: JobId): Effect.Effect<Job, UnknownEntity | StateError> => {
    const held = ends.held(id)
    if (held !== undefined) return Effect.succeed(held)
    return repo.getJob(id).pipe(
      Effect.map(Option.map(withUsage)),
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new UnknownEntity({ message: `no job ${id}: list jobs with \`planter job ls\`` })),
        onSome: Effect.succeed
      }))
    )
  }

  /** Closes the job's scope with a reason: its release kills the tree (SIGKILL at once when forced). */
  const kill = Effect.fn("JobSupervisor.kill")(function*(id: JobId, options: { readonly force: boolean }) {
    const entry = registry.get(id)
    if (Option.isNone(entry)) return yield* get(id)
    yield* Ref.update(
      entry.value.endReason,
      (reason) => reason ?? (options.force ? "forced_kill" : "terminated_by_user")
    )
    // A forced kill also cuts short a graceful one already in its grace period.
    if (options.force) yield* sweep(entry.value, true)
    const fiber = yield* FiberMap.get(fibers, id).pipe(Effect.option)
    if (Option.isSome(fiber)) yield* Fiber.interruptFork(fiber.value)
    return yield* Deferred.await(entry.value.ended)
  })

  /** Ends a job for a limit: the reason and what was observed are set only if nothing ended it first. */
  const end = Effect.fn("JobSupervisor.end")(function*(id: JobId, reason: LimitReason, detail: LimitDetail) {
    const entry = registry.get(id)
    if (Option.isNone(entry)) return yield* get(id)
    // The detail is set in the same atomic step as the reason, so the release never sees one without the other.
    const won = yield* Ref.modify(entry.value.endReason, (current): [boolean, TerminationReason | null] => {
      if (current !== null) return [false, current]
      entry.value.observed.limitDetail = detail
      return [true, reason]
    })
    if (!won) return yield* Deferred.await(entry.value.ended)
    yield* Effect.logInfo(`ending ${id}: ${reason} (observed ${detail.observed}, limit ${detail.limit})`)
    const fiber = yield* FiberMap.get(fibers, id).pipe(Effect.option)
    if (Option.isSome(fiber)) yield* Fiber.interruptFork(fiber.value)
    return yield* Deferred.await(entry.value.ended)
  })

  const stopCell = Effect.fn("JobSupervisor.stopCell")(function*(cellId: CellId, options: { readonly force: boolean }) {
    const jobs = (yield* registry.all).filter((entry) => entry.job.cell_id === cellId)
    if (jobs.length === 0) return
    if (!options.force) {
      return yield* new StateConflict({
        message: `cell ${cellId} has ${jobs.length} running job(s) (${
          jobs.map((entry) => entry.job.id).join(", ")
        }): kill them first, or remove with --force to kill them`
      })
    }
    yield* Effect.forEach(
      jobs,
      // A job that finished meanwhile is already what --force wanted.
      (entry) => kill(entry.job.id, { force: true }).pipe(Effect.catchTag("UnknownEntity", () => Effect.void)),
      { concurrency: "unbounded", discard: true }
    )
  })

  const writeStdin = Effect.fn("JobSupervisor.writeStdin")(function*(id: JobId, data: Uint8Array, eof: boolean) {
    const entry = registry.get(id)
    if (Option.isNone(entry)) {
      const job = yield* get(id)
      return yield* new StateConflict({
        message: `job ${job.id} is not running (${job.termination_reason ?? job.status}): its stdin is gone`
      })
    }
    const pipe = entry.value.stdin
    if (!pipe) {
      return yield* new StateConflict({
        message:
          `job ${id} has no stdin to write: only a job started with a pipe (\`planter run -i\`, JobRun stdin: true) by this daemon has one`
      })
    }
    if (data.length > 0) {
      yield* pipe.write(data).pipe(
        Effect.mapError((why) => new StateConflict({ message: `cannot write to job ${id}: ${why}` }))
      )
    }
    if (eof) yield* pipe.close
  })

  return JobSupervisor.of({
    run,
    writeStdin,
    adopt,
    get,
    list: (cellId) => Effect.map(repo.listJobs(cellId), (jobs) => jobs.map(withUsage)),
    page: (query) =>
      Effect.map(repo.pageJobs({ ...query, limit: query.limit + 1 }), (rows) => {
        const { items, next } = pageOf(rows, query.limit, (job) => encodeCursor(job.started_at_ms, job.id))
        return new JobPage({ jobs: items.map(withUsage), next })
      }),
    kill,
    end,
    stopCell,
    degraded: ends.degraded
  })
})

export const layer = Layer.scoped(JobSupervisor, make)
