import { Effect, Schedule } from "effect"
import type { Scope } from "effect"
import type { JobId } from "../rpc/Ids.js"
import type { LimitDetail, TerminationReason } from "../rpc/Models.js"
import { Job } from "../rpc/Models.js"
import { fromLauncherStatus } from "../services/ExitStatus.js"
import type { ProcessExit } from "../services/SandboxRunner.js"
import type { JournalEvent, StateRepositoryShape } from "../services/StateRepository.js"

/** The journal entry for a job's end: its kind follows from the reason. */
export const finishEvent = (job: Job, reason: TerminationReason, detail: Record<string, unknown>): JournalEvent => ({
  kind: reason === "exited" ? "job_exited" : reason === "lost" ? "job_lost" : "job_killed",
  cell_id: job.cell_id,
  job_id: job.id,
  detail: { termination_reason: reason, ...detail }
})

/** How often an end that could not be written is tried again: soon at first, then every 5 s. */
const RETRY = Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))

/**
 * Records how jobs ended, and never lets a failed write hang anyone: when
 * the database refuses (disk full, read-only), the end is held in memory,
 * answered to whoever asks, retried in the background until it is on disk,
 * and the daemon reports itself degraded meanwhile.
 */
export const makeJobEnds = (repo: StateRepositoryShape, scope: Scope.Scope) => {
  const held = new Map<JobId, Job>()
  let lastFailure: string | null = null

  const write = (job: Job, event: JournalEvent) =>
    repo.finishJob(
      job.id,
      {
        exit_code: job.exit_code,
        signal: job.signal,
        termination_reason: job.termination_reason!,
        finished_at_ms: job.finished_at_ms!,
        peak_rss_bytes: job.peak_rss_bytes,
        cpu_ms: job.cpu_ms,
        limit_detail: job.limit_detail
      },
      event,
      job
    )

  /** The job's final record: the stored one when the write succeeded, else the one held in memory. */
  const record = (
    job: Job,
    leaderExit: ProcessExit,
    reason: TerminationReason,
    detail: Record<string, unknown> = {},
    observed: {
      readonly peak_rss_bytes: number | null
      readonly cpu_ms: number | null
      readonly limit_detail: LimitDetail | null
    } = {
      peak_rss_bytes: null,
      cpu_ms: null,
      limit_detail: null
    }
  ) =>
    Effect.gen(function*() {
      // The running record with its end: derived from a valid Job, not checked again (finishJob binds each field).
      // bubblewrap's leader is the launcher, which reports its job's signal as 128+N.
      const exit = job.sandbox.backend === "bubblewrap" ? fromLauncherStatus(leaderExit) : leaderExit
      const ended = new Job({
        ...job,
        ...observed,
        usage: null,
        status: "exited",
        exit_code: exit.code,
        signal: exit.signal,
        termination_reason: reason,
        finished_at_ms: Date.now()
      }, true)
      const event = finishEvent(job, reason, {
        exit_code: exit.code,
        signal: exit.signal,
        ...(observed.limit_detail ? { limit_detail: { ...observed.limit_detail } } : {}),
        ...detail
      })
      const stored = yield* Effect.either(write(ended, event))
      if (stored._tag === "Right") return stored.right._tag === "Some" ? stored.right.value : ended
      held.set(job.id, ended)
      lastFailure = `cannot record the end of ${job.id}: ${stored.left.message}`
      yield* Effect.logError(`${lastFailure}; holding it in memory and retrying`)
      yield* write(ended, event).pipe(
        Effect.retry(RETRY),
        Effect.tap(() =>
          Effect.sync(() => {
            held.delete(job.id)
            if (held.size === 0) lastFailure = null
          })
        ),
        Effect.tap(() => Effect.logInfo(`recorded the end of ${job.id} after a failed write`)),
        Effect.forkIn(scope)
      )
      return ended
    }) // Inside the job's job.finish span, which names the job and the reason: no span of its own.

  return {
    record,
    /** A job whose end is known but not yet on disk. */
    held: (id: JobId): Job | undefined => held.get(id),
    /** Why the daemon is degraded, or null when every end is on disk. */
    degraded: Effect.sync(() => (held.size === 0 ? null : `${held.size} job end(s) not yet written: ${lastFailure}`))
  }
}

export type JobEnds = ReturnType<typeof makeJobEnds>
