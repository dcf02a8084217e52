import { Duration, Effect, Layer, Schedule } from "effect"
import { DaemonConfig } from "../services/DaemonConfig.js"
import { StateRepository } from "../services/StateRepository.js"
import { makeJobHousekeeping } from "./JobHousekeeping.js"

/** How often retention looks for expired jobs: a tenth of the retention, between a minute and an hour. */
const sweepEvery = (retention: Duration.Duration) =>
  Duration.clamp(Duration.divide(retention, 10).pipe((d) => d._tag === "Some" ? d.value : retention), {
    minimum: Duration.minutes(1),
    maximum: Duration.hours(1)
  })

/**
 * `planterd --log-retention D`: finished jobs whose end is older than D are
 * removed, records and logs, as `planter job prune --older-than D` does;
 * once at start, then on a schedule, in a fiber of the daemon's scope. A
 * failed sweep is logged and tried again at the next one.
 */
export const layer = Layer.scopedDiscard(Effect.gen(function*() {
  const config = yield* DaemonConfig
  const retention = config.logRetention
  if (retention === undefined) return
  const repo = yield* StateRepository
  const housekeeping = makeJobHousekeeping(repo, config.stateDir)
  const sweep = housekeeping.prune({
    finishedBeforeMs: Date.now() - Duration.toMillis(retention),
    cellId: null,
    ownerUid: null,
    by: "log retention",
    uid: null
  }).pipe(
    Effect.tap((result) =>
      result.removed.length === 0
        ? Effect.void
        : Effect.logInfo(
          `log retention: removed ${result.removed.length} finished job(s) older than ${
            Duration.format(retention)
          }, ${result.freed_bytes} log byte(s)`
        )
    ),
    Effect.catchAll((error) => Effect.logWarning(`log retention: ${error.message}; trying again at the next sweep`))
  )
  // The cutoff is taken when each sweep runs, not when the daemon started.
  yield* Effect.suspend(() => sweep).pipe(
    Effect.repeat(Schedule.spaced(sweepEvery(retention))),
    Effect.forkScoped
  )
}))
