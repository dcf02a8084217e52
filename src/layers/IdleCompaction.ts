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

/** Quiet looks in a row before a burst counts as over: one second. */
export const QUIET_LOOKS_TO_SETTLE = 2

/**
 * The least time between two compactions: whatever the pattern of work (a
 * monitor tick that is busy every other look, say), they cost at most a few
 * tens of milliseconds every 10 s.
 */
export const MIN_COMPACTION_INTERVAL_MS = 10_000

/** What the last looks saw. */
export interface QuietState {
  /** Whether the daemon has been busy since its last compaction. */
  readonly busySinceCompaction: boolean
  /** How many quiet looks in a row there have been. */
  readonly quietLooks: number
  /** When the last compaction ran (ms, the caller's clock). */
  readonly lastCompactionMs: number
}

/**
 * The decision, pure so it can be tested: compact once per burst, when the
 * burst is over (QUIET_LOOKS_TO_SETTLE quiet looks after a busy one), enough
 * heap is slack, and the last compaction is MIN_COMPACTION_INTERVAL_MS ago.
 * An idle daemon compacts once and then never again until it works again; a
 * daemon that stays busy never pauses for it.
 */
export const decide = (
  state: QuietState,
  look: { readonly cpuMicros: number; readonly slackBytes: number; readonly nowMs: number }
): { readonly compact: boolean; readonly next: QuietState } => {
  if (look.cpuMicros > BUSY_CPU_MICROS) {
    return { compact: false, next: { ...state, busySinceCompaction: true, quietLooks: 0 } }
  }
  const quiet = { ...state, quietLooks: state.quietLooks + 1 }
  const compact = quiet.busySinceCompaction &&
    quiet.quietLooks >= QUIET_LOOKS_TO_SETTLE &&
    look.slackBytes >= SLACK_WORTH_COMPACTING &&
    look.nowMs - state.lastCompactionMs >= MIN_COMPACTION_INTERVAL_MS
  return compact
    ? { compact, next: { busySinceCompaction: false, quietLooks: quiet.quietLooks, lastCompactionMs: look.nowMs } }
    : { compact, next: quiet }
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
 * QUIET_CHECK_EVERY the daemon looks at the CPU it used since the last look,
 * and once a burst is over compacts the heap (see `decide`). The pause
 * (tens of milliseconds on this machine's 2 cores) falls where the daemon
 * has had next to nothing to do for a second.
 */
export const layer = Layer.scopedDiscard(Effect.gen(function*() {
  const gc = exposedGc()
  if (gc === undefined) {
    yield* Effect.logWarning("V8's gc could not be exposed: the heap is compacted by V8's own schedule only")
    return
  }
  yield* compactAndLog(gc, "start-up")
  let state: QuietState = { busySinceCompaction: false, quietLooks: 0, lastCompactionMs: performance.now() }
  let cpu = process.cpuUsage()
  const check = Effect.gen(function*() {
    const used = process.cpuUsage(cpu)
    cpu = process.cpuUsage()
    const decision = decide(state, {
      cpuMicros: used.user + used.system,
      slackBytes: slackBytes(),
      nowMs: performance.now()
    })
    state = decision.next
    if (!decision.compact) return
    yield* compactAndLog(gc, "a burst of work")
    // The compaction's own CPU is no work asked of the daemon: counted, it would make the next look busy and
    // re-arm the next compaction, one every MIN_COMPACTION_INTERVAL_MS for as long as the daemon is idle.
    cpu = process.cpuUsage()
  })
  yield* check.pipe(
    Effect.repeat(Schedule.spaced(QUIET_CHECK_EVERY)),
    Effect.delay(QUIET_CHECK_EVERY),
    Effect.forkScoped
  )
}))
