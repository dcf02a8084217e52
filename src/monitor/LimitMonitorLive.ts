import { Cause, Clock, Duration, Effect, FiberMap, Layer, Queue, Schedule } from "effect"
import * as fs from "node:fs"
import { fileSize, jobFiles } from "../layers/JobFiles.js"
import type { JobId } from "../rpc/Ids.js"
import type { Job } from "../rpc/Models.js"
import { LimitDetail } from "../rpc/Models.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { JobRegistry } from "../services/JobRegistry.js"
import type { LimitReason } from "../services/JobSupervisor.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import { fromStored } from "../services/Limits.js"
import { indexSnapshot, ProcessProbe, sumUsage, treeView } from "../services/ProcessProbe.js"
import type { MonitorStats } from "./LimitMonitor.js"
import { breachOf, LimitMonitor, usageOf } from "./LimitMonitor.js"

/**
 * Cuts a job's logs back to its quota once its tree is gone (stdout first,
 * then stderr gets what is left), so that what a log-quota kill leaves on
 * disk is the quota, not the quota plus the writes of the last interval.
 */
export const truncateToQuota = (stdout: string, stderr: string, quota: number) => {
  const out = fileSize(stdout)
  try {
    if (out > quota) fs.truncateSync(stdout, quota)
    const left = Math.max(0, quota - Math.min(out, quota))
    if (fileSize(stderr) > left) fs.truncateSync(stderr, left)
  } catch {
    // Gone already (the job's files removed): nothing left to bound.
  }
}

export const make = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const registry = yield* JobRegistry
  const supervisor = yield* JobSupervisor
  const probe = yield* ProcessProbe
  const paths = statePaths(config.stateDir)
  const interval = config.monitorInterval ?? Duration.seconds(1)
  const intervalMs = Duration.toMillis(interval)
  const scope = yield* Effect.scope

  let lastTickAt: number | null = null
  let ticks = 0
  let restarts = 0
  let lastCpuUs = 0
  let totalCpuUs = 0
  /** Jobs this monitor is already ending, so a slow end is not asked for again every tick. */
  const ending = new Set<JobId>()

  /** Ends a job for a limit in the background (the tick never waits for a grace period). */
  const endJob = (id: JobId, reason: LimitReason, detail: LimitDetail, after: Effect.Effect<void> = Effect.void) => {
    if (ending.has(id)) return Effect.void
    ending.add(id)
    return supervisor.end(id, reason, detail).pipe(
      Effect.zipRight(after),
      Effect.catchAllCause((cause) => Effect.logError(`cannot end ${id} for ${reason}`, cause)),
      Effect.ensuring(Effect.sync(() => ending.delete(id))),
      Effect.annotateLogs({ "planter.fiber": "limit_end", "planter.job.id": id, "planter.termination_reason": reason }),
      Effect.forkIn(scope),
      Effect.asVoid
    )
  }

  const tick = Effect.gen(function*() {
    const cpuBefore = process.cpuUsage()
    const entries = yield* registry.all
    // A span only for ticks with work: an idle daemon exports nothing every second.
    if (entries.length > 0) {
      yield* Effect.gen(function*() {
        // One read of the process table for every job. treeView also records
        // each tree's members as they are seen, so an unsandboxed child that
        // later leaves its group (setsid) and loses its parent is still known
        // to the kill: this tick is that tracker too.
        const snapshot = indexSnapshot(yield* probe.snapshot)
        const now = yield* Clock.currentTimeMillis
        for (const entry of entries) {
          const files = jobFiles(paths, entry.job.id)
          const tree = sumUsage(treeView(snapshot, entry.tree).members)
          const usage = usageOf(
            entry.job,
            tree,
            fileSize(files.stdout) + fileSize(files.stderr),
            now,
            entry.observed.usage
          )
          entry.observed.usage = usage
          const limits = fromStored(entry.job.command.limits)
          const breach = breachOf(limits, usage)
          if (breach !== undefined) {
            yield* endJob(
              entry.job.id,
              breach.reason,
              breach.detail,
              breach.reason === "log_quota"
                ? Effect.sync(() => truncateToQuota(files.stdout, files.stderr, breach.detail.limit))
                : Effect.void
            )
          }
        }
      }).pipe(
        Effect.withSpan("LimitMonitor.tick", {
          captureStackTrace: false,
          attributes: { "planter.jobs.running": entries.length }
        })
      )
    }
    const spent = process.cpuUsage(cpuBefore)
    lastCpuUs = spent.user + spent.system
    totalCpuUs += lastCpuUs
    ticks++
    lastTickAt = yield* Clock.currentTimeMillis
  })

  // The tick loop: restarted with its cause logged whenever a tick fails, never silently gone.
  yield* tick.pipe(
    Effect.repeat(Schedule.spaced(interval)),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.zipRight(
          Effect.logError("the limit monitor failed; restarting it after one interval", cause),
          Effect.sync(() => void restarts++)
        )
    ),
    Effect.zipRight(Effect.sleep(interval)),
    Effect.forever,
    Effect.annotateLogs({ "planter.fiber": "monitor" }),
    Effect.forkScoped
  )

  // Timeouts: one timer per job, firing at its deadline (not at the next tick).
  const timers = yield* FiberMap.make<JobId>()
  const arm = (job: Job) => {
    const limit = fromStored(job.command.limits).timeout_ms
    if (limit === null) return Effect.void
    const fire = Effect.gen(function*() {
      const deadline = job.started_at_ms + limit
      // A timer may wake a millisecond early by the wall clock: never end a job before its deadline.
      let at = yield* Clock.currentTimeMillis
      while (at < deadline) {
        yield* Effect.sleep(Duration.millis(deadline - at))
        at = yield* Clock.currentTimeMillis
      }
      yield* endJob(job.id, "timeout", new LimitDetail({ limit, observed: at - job.started_at_ms, at_ms: at }))
    })
    return FiberMap.run(
      timers,
      job.id,
      Effect.annotateLogs(fire, { "planter.fiber": "timeout", "planter.job.id": job.id }),
      { onlyIfMissing: true }
    ).pipe(Effect.asVoid)
  }
  const changes = yield* registry.subscribe
  for (const entry of yield* registry.all) yield* arm(entry.job)
  yield* Queue.take(changes).pipe(
    Effect.flatMap((change) => (change._tag === "Started" ? arm(change.job) : FiberMap.remove(timers, change.job.id))),
    Effect.forever,
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.logError("the timeout watcher failed; restarting it", cause)
    ),
    Effect.forever,
    Effect.annotateLogs({ "planter.fiber": "monitor.timeouts" }),
    Effect.forkScoped
  )

  return LimitMonitor.of({
    stats: Effect.sync((): MonitorStats => {
      const mean = ticks === 0 ? 0 : totalCpuUs / ticks
      return {
        interval_ms: intervalMs,
        last_tick_at_ms: lastTickAt,
        ticks,
        restarts,
        last_tick_cpu_us: lastCpuUs,
        mean_tick_cpu_us: Math.round(mean),
        cpu_percent_of_core: Math.round((mean / 1000 / intervalMs) * 100 * 1000) / 1000
      }
    })
  })
})

export const layer = Layer.scoped(LimitMonitor, make)
