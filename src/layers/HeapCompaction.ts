import * as v8 from "node:v8"
import * as vm from "node:vm"
import { trimMalloc } from "./MallocTuning.js"

let exposed: (() => void) | null | undefined

/**
 * V8's `gc` without starting node with --expose-gc (the way jest gets it):
 * exposed to one new context only, then the flag is turned off again. Made
 * once per process (each attempt would cost a context); undefined where
 * V8 refuses.
 */
export const exposedGc = (): (() => void) | undefined => {
  if (exposed === undefined) {
    try {
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as unknown
      v8.setFlagsFromString("--no-expose-gc")
      exposed = typeof gc === "function" ? gc as () => void : null
    } catch {
      exposed = null
    }
  }
  return exposed ?? undefined
}

/**
 * One full, compacting collection, then malloc's free pages back to the OS.
 * Sweeping alone frees objects but keeps each page that still holds one live
 * object (after start-up, 8–9 MB of a 24 MB old space was such slack), and
 * only a full collection frees the memory of dead Buffers a young collection
 * missed: both come back only by this, or by V8's "memory reducer", which in
 * Node 20 runs ~8 s after the last full collection and not at all after some
 * bursts (docs/benchmarks.md, "Start-up compaction", "Idle compaction").
 */
export const compact = (gc: () => void) => {
  collect(gc)
  trimMalloc()
}

/** The compacting collection alone: `compact` without malloc_trim. */
export const collect = (gc: () => void) => {
  v8.setFlagsFromString("--compact-on-every-full-gc")
  try {
    gc()
  } finally {
    v8.setFlagsFromString("--no-compact-on-every-full-gc")
  }
}

/**
 * What a compaction could give back: V8's committed but unused heap, and
 * the memory of ArrayBuffers (Buffers), dead or alive (a full collection
 * frees the dead; the live are few at rest). process.memoryUsage's count of
 * them, not V8's external memory, which falls only once a background sweep
 * has run, after the collection returns.
 */
export const reclaimableBytes = () => {
  const heap = v8.getHeapStatistics()
  return heap.total_heap_size - heap.used_heap_size + process.memoryUsage().arrayBuffers
}

export const usedHeapBytes = () => v8.getHeapStatistics().used_heap_size

export const mib = (bytes: number) => Math.round(bytes / 104_857.6) / 10
