import { Duration, Effect, Layer, Schedule } from "effect"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { trimMalloc } from "./MallocTuning.js"

/** How often the daemon looks at how busy it was and how much of its heap is slack. */
export const QUIET_CHECK_EVERY = Duration.millis(500)

/** CPU over one check interval above which the daemon counts as busy (5 % of a core). */
export const BUSY_CPU_MICROS = 25_000

/** Committed but unused V8 heap below which a compaction is not worth its pause. */
export const SLACK_WORTH_COMPACTING = 3 * 1024 * 1024

/** What the last checks saw: whether the daemon has been busy since its last compaction. */
export interface QuietState {
  readonly busySinceCompaction: boolean
}

/**
 * The decision, pure so it can be tested: compact once per burst, when the
 * burst is over (a quiet interval after a busy one) and enough heap is slack.
 * An idle daemon compacts once and then never again until it works again; a
 * daemon that stays busy never pauses for it.
 */
export const decide = (
  state: QuietState,
  cpuMicros: number,
  slackBytes: number
): { readonly compact: boolean; readonly next: QuietState } => {
  if (cpuMicros > BUSY_CPU_MICROS) return { compact: false, next: { busySinceCompaction: true } }
  if (state.busySinceCompaction && slackBytes >= SLACK_WORTH_COMPACTING) {
    return { compact: true, next: { busySinceCompaction: false } }
  }
  return { compact: false, next: state }
}

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
 * slack, and after 2 000 jobs and a large log read ~11 MB; only a compaction
 * gives those pages back. V8 does this by itself ("memory reducer"), but only
 * ~8 s after its last full collection (docs/benchmarks.md, "Daemon memory").
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

/** Compacts, and says at debug level how much heap was in use before and after, and how long the pause was. */
const compactAndLog = (gc: () => void, after: string) =>
  Effect.suspend(() => {
    const usedBefore = v8.getHeapStatistics().used_heap_size
    const started = performance.now()
    compact(gc)
    return Effect.logDebug(`compacted the heap after ${after}`).pipe(
      Effect.annotateLogs({
        "planter.heap.used_before_mib": mib(usedBefore),
        "planter.heap.used_after_mib": mib(v8.getHeapStatistics().used_heap_size),
        "planter.heap.pause_ms": Math.round(performance.now() - started)
      })
    )
  })

const slackBytes = () => {
  const heap = v8.getHeapStatistics()
  return heap.total_heap_size - heap.used_heap_size
}

/**
 * Gives memory back once start-up is over (at once: the layer is built
 * before the socket opens) and whenever a burst of work is over: every
 * QUIET_CHECK_EVERY the daemon looks at the CPU it used since the last look;
 * the first quiet interval after a busy one compacts the heap if enough of
 * it is slack. The pause (10–30 ms on this machine's 2 cores) falls
 * where nothing was asked of the daemon for half a second.
 */
export const layer = Layer.scopedDiscard(Effect.gen(function*() {
  const gc = exposedGc()
  if (gc === undefined) {
    yield* Effect.logWarning("V8's gc could not be exposed: the heap is compacted by V8's own schedule only")
    return
  }
  yield* compactAndLog(gc, "start-up")
  let state: QuietState = { busySinceCompaction: false }
  let cpu = process.cpuUsage()
  const check = Effect.gen(function*() {
    const used = process.cpuUsage(cpu)
    cpu = process.cpuUsage()
    const slack = slackBytes()
    const decision = decide(state, used.user + used.system, slack)
    state = decision.next
    if (decision.compact) yield* compactAndLog(gc, "a burst of work")
  })
  yield* check.pipe(
    Effect.repeat(Schedule.spaced(QUIET_CHECK_EVERY)),
    Effect.delay(QUIET_CHECK_EVERY),
    Effect.forkScoped
  )
}))
