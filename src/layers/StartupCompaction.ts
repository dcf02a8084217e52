import { Effect, Layer } from "effect"
import { compact, exposedGc, mib, usedHeapBytes } from "./HeapCompaction.js"

/**
 * Gives back what start-up left behind, once, before the socket opens (so
 * no client waits for the pause: 25–45 ms on this machine's 2 cores, 44–90
 * under load); says at debug level how much heap was in use before and after.
 */
export const layer = Layer.effectDiscard(Effect.suspend(() => {
  const gc = exposedGc()
  if (gc === undefined) {
    return Effect.logWarning("V8's gc could not be exposed: the heap is compacted on V8's own schedule only")
  }
  const usedBefore = usedHeapBytes()
  const started = performance.now()
  compact(gc)
  return Effect.logDebug("compacted the heap after start-up").pipe(
    Effect.annotateLogs({
      "planter.heap.used_before_mib": mib(usedBefore),
      "planter.heap.used_after_mib": mib(usedHeapBytes()),
      "planter.heap.pause_ms": Math.round(performance.now() - started)
    })
  )
}))
