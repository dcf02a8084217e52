import type { Exit } from "effect"
import {
  Clock,
  Context as Ctx,
  Effect,
  Fiber,
  FiberId,
  FiberRef,
  HashMap,
  HashSet,
  Layer,
  Option,
  Supervisor
} from "effect"
import type * as Context from "effect/Context"
import { FiberInfo } from "../rpc/Models.js"

/**
 * Every live fiber of the daemon with the fiber that forked it, kept by an
 * Effect Supervisor (Supervisor.track keeps no parents; this one adds them
 * at the same cost: one Map write when a fiber starts, one delete when it
 * ends). Installed around the whole daemon (`Effect.supervised`), so each
 * fiber forked inside it — connections, requests, jobs, the monitor — is
 * seen from its first step until its last.
 */
export class FiberTreeSupervisor extends Supervisor.AbstractSupervisor<void> {
  readonly fibers = new Map<Fiber.RuntimeFiber<unknown, unknown>, FiberEntry>()
  readonly value = Effect.void

  override onStart<A, E, R>(
    _context: Context.Context<R>,
    _effect: Effect.Effect<A, E, R>,
    // Supervisor.onStart's own parameter type, which an override must accept as is.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    parent: Option.Option<Fiber.RuntimeFiber<any, any>>,
    fiber: Fiber.RuntimeFiber<A, E>
  ): void {
    this.fibers.set(fiber as Fiber.RuntimeFiber<unknown, unknown>, {
      parent: Option.isSome(parent) ? parent.value.id().id : null,
      startedAt: Date.now(),
      labels: undefined
    })
  }

  override onEnd<A, E>(_value: Exit.Exit<A, E>, fiber: Fiber.RuntimeFiber<A, E>): void {
    this.fibers.delete(fiber as Fiber.RuntimeFiber<unknown, unknown>)
  }

  /**
   * Labels the fiber serving a request, for as long as it lives (it serves
   * that request only): a field of its entry, where a FiberRef set with
   * `Effect.locally` copied the fiber's FiberRefs twice and ran an
   * acquire/use/release per request, and log annotations (a HashMap rebuilt
   * per request) measured about 30 µs of daemon CPU per Health call. Not
   * inherited: a fiber a request forks (a job's) is not that request.
   */
  label(fiber: Fiber.RuntimeFiber<unknown, unknown>, labels: Readonly<Record<string, string | number>>): void {
    const entry = this.fibers.get(fiber)
    if (entry !== undefined) entry.labels = labels
  }
}

/** What the supervisor knows of a live fiber. */
interface FiberEntry {
  readonly parent: number | null
  readonly startedAt: number
  /** Set by `label` on a request's fiber. */
  labels: Readonly<Record<string, string | number>> | undefined
}

export class FiberTree extends Ctx.Tag("planter/FiberTree")<FiberTree, FiberTreeSupervisor>() {
  static layer = (supervisor: FiberTreeSupervisor) => Layer.succeed(FiberTree, supervisor)
}

/** A fiber's labels: its log annotations (`planter.fiber`, `planter.job.id`, …) and request labels, as text. */
const labelsOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>, entry: FiberEntry): Record<string, string> => {
  const labels: Record<string, string> = {}
  for (const [key, value] of HashMap.toEntries(fiber.getFiberRef(FiberRef.currentLogAnnotations))) {
    labels[key] = typeof value === "string" ? value : JSON.stringify(value)
  }
  for (const [key, value] of Object.entries(entry.labels ?? {})) labels[key] = String(value)
  return labels
}

/**
 * The live fibers, oldest first, each with its parent, labels, status and
 * current span (with how long it has been open). The status comes from
 * asking each fiber (Fiber.status), so a fiber that is running is seen
 * running; a suspended one says which fibers it waits on.
 */
export const snapshot = (tree: FiberTreeSupervisor) =>
  Effect.gen(function*() {
    const nowNs = yield* Clock.currentTimeNanos
    const selfIds = FiberId.ids(yield* Effect.fiberId)
    const entries = [...tree.fibers.entries()]
    const infos: Array<FiberInfo> = []
    for (const [fiber, meta] of entries) {
      // The fiber answering this request is busy doing just that: leave it out.
      if (HashSet.has(selfIds, fiber.id().id)) continue
      const status = yield* fiber.status
      const span = fiber.currentSpan
      const spanStart = span?._tag === "Span" ? span.status.startTime : undefined
      infos.push(
        new FiberInfo({
          id: fiber.id().id,
          parent_id: meta.parent,
          status: status._tag.toLowerCase(),
          blocked_on: status._tag === "Suspended" ? [...HashSet.toValues(FiberId.ids(status.blockingOn))] : [],
          labels: labelsOf(fiber, meta),
          span: span?._tag === "Span" ? span.name : null,
          span_ms: spanStart === undefined ? null : Math.max(0, Number((nowNs - spanStart) / 1_000_000n)),
          started_at_ms: meta.startedAt
        })
      )
    }
    return infos.sort((a, b) => a.id - b.id)
  })
