import { Effect, Layer } from "effect"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { trimMalloc } from "./MallocTuning.js"

/**
 * V8's `gc` without starting node with --expose-gc (the way jest gets it):
 * exposed to one new context only, then the flag is turned off again.
 */
const exposedGc = (): (() => void) | undefined => {
  try {
    v8.setFlagsFromString("--expose-gc")
    const gc = vm.runInNewContext("gc") as unknown
    v8.setFlagsFromString("--no-expose-gc")
    return typeof gc === "function" ? gc as () => void : undefined
  } catch {
    return undefined
  }
}

/**
 * One full, compacting collection, then malloc's free pages back to the OS.
 * Sweeping alone frees objects but keeps each page that still holds one live
 * object: after start-up, 8–9 MB of the daemon's 24 MB old space was such
 * slack, which only a compaction gives back; V8's own "memory reducer" does
 * it ~8 s after the last full collection (docs/benchmarks.md, "Start-up compaction").
 */
const compact = (gc: () => void) => {
  v8.setFlagsFromString("--compact-on-every-full-gc")
  try {
    gc()
  } finally {
    v8.setFlagsFromString("--no-compact-on-every-full-gc")
  }
  trimMalloc()
}

const mib = (bytes: number) => Math.round(bytes / 104_857.6) / 10

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
  const usedBefore = v8.getHeapStatistics().used_heap_size
  const started = performance.now()
  compact(gc)
  return Effect.logDebug("compacted the heap after start-up").pipe(
    Effect.annotateLogs({
      "planter.heap.used_before_mib": mib(usedBefore),
      "planter.heap.used_after_mib": mib(v8.getHeapStatistics().used_heap_size),
      "planter.heap.pause_ms": Math.round(performance.now() - started)
    })
  )
}))
