import { Context, Effect, Layer, Runtime } from "effect"
import { collect, exposedGc, mib, reclaimableBytes, usedHeapBytes } from "./HeapCompaction.js"
import { trimMalloc } from "./MallocTuning.js"

/** How long no peer may have sent anything before the daemon counts as quiet. */
export const QUIET_MS = 1000
/** What must have piled up beyond the last look's remainder (dead Buffers, empty heap pages) to be worth a pause. */
export const RECLAIMABLE_BYTES = 8 * 1024 * 1024
/** How long after a collection V8's background sweep is given to free dead Buffers' memory. */
const SWEEP_GRACE_MS = 250
/** At most one compaction per this long, whatever the traffic. */
export const MIN_INTERVAL_MS = 10_000

/** What the policy below needs from the process: a clock, a timer, V8's numbers, and the compaction itself. */
export interface CompactionHost {
  readonly now: () => number
  /** Runs `look` once after `delay` ms; must not keep the process alive. */
  readonly schedule: (look: () => void, delay: number) => { readonly cancel: () => void }
  readonly reclaimable: () => number
  /** Compacts, then says what it gave back once the memory freed has gone back to the system. */
  readonly compact: (done: (report: CompactionReport) => void) => void
}

export interface CompactionReport {
  readonly before: number
  readonly after: number
  readonly pauseMs: number
}

/**
 * When to give memory back: a second after the last byte any peer sent, if
 * at least 8 MiB could come back beyond what the last look could not give
 * back (the 4 MiB Buffers a large log read leaves for a full collection, the
 * heap pages a burst of jobs leaves half empty), at most once per 10 s.
 * Driven by activity only: with no peer talking, no timer runs at all (200
 * monitored jobs cost nothing more), and a peer that keeps asking never
 * waits on a pause; V8's own memory reducer does the same ~8 s after its
 * last full collection, and after some bursts not at all
 * (docs/benchmarks.md, "Idle compaction").
 */
export class IdleCompactor {
  private lastActivity = -Infinity
  private lastCompaction = -Infinity
  private pending: { readonly cancel: () => void } | undefined
  /** What could not be given back at the last look: only what piles up beyond it counts. */
  private floor: number

  constructor(
    private readonly host: CompactionHost,
    private readonly onCompacted: (report: CompactionReport) => void
  ) {
    this.floor = host.reclaimable()
  }

  /** A peer sent something: the daemon is not quiet. Cheap enough for every socket read. */
  readonly noteActivity = (): void => {
    this.lastActivity = this.host.now()
    if (this.pending === undefined) this.arm(QUIET_MS)
  }

  stop(): void {
    this.pending?.cancel()
    this.pending = undefined
  }

  private arm(delay: number) {
    this.pending = this.host.schedule(this.look, delay)
  }

  private readonly look = (): void => {
    this.pending = undefined
    const now = this.host.now()
    const wait = Math.max(QUIET_MS - (now - this.lastActivity), MIN_INTERVAL_MS - (now - this.lastCompaction))
    if (wait > 0) return this.arm(wait)
    const reclaimable = this.host.reclaimable()
    this.floor = Math.min(this.floor, reclaimable)
    // Nothing worth a pause: the next activity arms the next look.
    if (reclaimable - this.floor < RECLAIMABLE_BYTES) return
    this.lastCompaction = now
    this.host.compact((report) => {
      this.floor = report.after
      this.onCompacted(report)
    })
  }
}

/** IdleCompactor's clock, timer and compaction in this process. */
const processHost = (gc: () => void): CompactionHost => ({
  now: () => performance.now(),
  schedule: (look, delay) => {
    const timer = setTimeout(look, delay)
    timer.unref()
    return { cancel: () => clearTimeout(timer) }
  },
  reclaimable: reclaimableBytes,
  compact: (done) => {
    const before = reclaimableBytes()
    const started = performance.now()
    collect(gc)
    const pauseMs = performance.now() - started
    // V8 frees dead Buffers' memory on a background thread after the collection returns (250 ms is ample
    // here): malloc's free pages go back to the system after that, and only then is the remainder known.
    setTimeout(() => {
      trimMalloc()
      done({ before, after: reclaimableBytes(), pauseMs })
    }, SWEEP_GRACE_MS).unref()
  }
})

export class IdleCompaction extends Context.Tag("planter/IdleCompaction")<IdleCompaction, {
  /** A peer sent something: the daemon is not quiet. */
  readonly noteActivity: () => void
}>() {}

/** The daemon's IdleCompactor; says at debug level what each compaction gave back. */
export const layer = Layer.scoped(
  IdleCompaction,
  Effect.gen(function*() {
    const gc = exposedGc()
    // Without V8's gc (StartupCompaction has said so) there is nothing to do.
    if (gc === undefined) return IdleCompaction.of({ noteActivity: () => {} })
    const log = Runtime.runFork(yield* Effect.runtime<never>())
    const compactor = new IdleCompactor(processHost(gc), (report) =>
      log(
        Effect.logDebug("compacted the heap after a quiet second").pipe(
          Effect.annotateLogs({
            "planter.heap.reclaimable_before_mib": mib(report.before),
            "planter.heap.reclaimable_after_mib": mib(report.after),
            "planter.heap.used_after_mib": mib(usedHeapBytes()),
            "planter.heap.pause_ms": Math.round(report.pauseMs)
          })
        )
      ))
    yield* Effect.addFinalizer(() => Effect.sync(() => compactor.stop()))
    return IdleCompaction.of({ noteActivity: compactor.noteActivity })
  })
)
