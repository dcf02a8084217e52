import { Effect, Layer, Schedule } from "effect"
import { JobRegistry } from "../services/JobRegistry.js"
import { ProcessProbe, treeView } from "../services/ProcessProbe.js"

/** How often the members of unsandboxed jobs' trees are recorded. */
const TREE_TRACK_INTERVAL = "500 millis"

/**
 * Unsandboxed jobs have no PID namespace to hold their tree together: a
 * child that calls setsid and outlives its parent would escape the kill.
 * One process-table read per interval records every member while it is
 * still reachable from the leader (the environment marker catches most of
 * the rest at kill time). bubblewrap jobs need none of this.
 */
export const layer = Layer.scopedDiscard(Effect.gen(function*() {
  const registry = yield* JobRegistry
  const probe = yield* ProcessProbe
  yield* Effect.gen(function*() {
    const unsandboxed = (yield* registry.all).filter((entry) => entry.job.sandbox.backend === "none")
    if (unsandboxed.length === 0) return
    const snapshot = yield* probe.snapshot
    for (const entry of unsandboxed) treeView(snapshot, entry.tree)
  }).pipe(
    Effect.withSpan("TreeTracker.sample"),
    Effect.repeat(Schedule.spaced(TREE_TRACK_INTERVAL)),
    Effect.forkScoped
  )
}))
