import type { Fiber } from "effect"
import { Cause, Chunk, Clock, Context, Effect, Exit, FiberRef, HashMap, Tracer } from "effect"

/**
 * `Effect.withSpan(name, { attributes, captureStackTrace: false })` for the spans on every job's start and end
 * (19 a job, 50 jobs a burst), in a third of the run-loop steps.
 *
 * Effect's own makes the span, then runs `onExit` for its end and `provideService` for the child's parent:
 * `provideService` reads the context, copies it with the span added and sets it through `FiberRef.locally`, an
 * acquire/use/release of its own. That came to ~28 steps and a dozen allocations a span, half of what a job's
 * start and end ran through Effect's run loop (docs/benchmarks.md, "The 50 starts: spans, ends by their own
 * bound, …"). Here one uninterruptible step sets the context, runs the body interruptibly, and restores the
 * context and ends the span whatever the body's exit: the same span (name, parent, links, annotations,
 * attributes, timing), the same context for the body, the same context after it.
 *
 * The call-site stack Effect.fn would capture is not taken: an Error per call, read only when a failed span is
 * exported, which the job's phase spans already place. With tracing off for the fiber, or under a parent that
 * disables propagation, this is `Effect.withSpan` itself (Effect then makes a no-op span or walks further up).
 */
export const hotSpan =
  (name: string, attributes?: Readonly<Record<string, unknown>>) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime<A, E, R>((fiber) => {
        const outer = fiber.currentContext
        const opened = openSpan(fiber, outer, name, attributes)
        if (opened === undefined) {
          return restore(
            Effect.withSpan(self, name, { captureStackTrace: false, ...(attributes ? { attributes } : {}) })
          )
        }
        const settable = fiber as unknown as SettableFiber
        settable.setFiberRef(FiberRef.currentContext, Context.add(outer, Tracer.ParentSpan, opened.span))
        return Effect.matchCauseEffect(restore(self), {
          onFailure: (cause) => {
            settable.setFiberRef(FiberRef.currentContext, outer)
            try {
              opened.end(Exit.failCause(cause))
            } catch (defect) {
              // A tracer that throws: both causes, as Effect.withSpan's onExit keeps them.
              return Effect.failCause(Cause.sequential(cause, Cause.die(defect)))
            }
            return Effect.failCause(cause)
          },
          onSuccess: (value) => {
            settable.setFiberRef(FiberRef.currentContext, outer)
            opened.end(Exit.succeed(value))
            return Effect.succeed(value)
          }
        })
      })
    )

/**
 * The fiber's own setter, which `FiberRef.set` runs as a run-loop step of its own (and `FiberRef.locally` as two,
 * inside an acquire/use/release): Effect's FiberRuntime has it, RuntimeFiber's public type does not declare it.
 * Called only in the fiber's own step, as Effect's are; test/unit/HotSpan.test.ts checks the context it leaves.
 */
interface SettableFiber {
  readonly setFiberRef: <X>(fiberRef: FiberRef.FiberRef<X>, value: X) => void
}

interface OpenSpan {
  readonly span: Tracer.Span
  readonly end: (exit: Exit.Exit<unknown, unknown>) => void
}

/** What Effect's `unsafeMakeSpan` makes for `withSpan`, or undefined where that is not a plain child span. */
const openSpan = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  context: Context.Context<never>,
  name: string,
  attributes: Readonly<Record<string, unknown>> | undefined
): OpenSpan | undefined => {
  if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return undefined
  const parent = Context.getOption(context, Tracer.ParentSpan)
  // A parent (made here or propagated from a client) that disables propagation: Effect walks up from it.
  if (parent._tag === "Some" && Context.get(parent.value.context, Tracer.DisablePropagation)) return undefined
  const services = fiber.currentDefaultServices
  const tracer = Context.get(services, Tracer.Tracer)
  const clock = Context.get(services, Clock.Clock)
  const timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
  const links = fiber.getFiberRef(FiberRef.currentTracerSpanLinks)
  const span = tracer.span(
    name,
    parent,
    Context.empty(),
    Chunk.isEmpty(links) ? [] : Chunk.toReadonlyArray(links),
    timing ? clock.unsafeCurrentTimeNanos() : BigInt(0),
    "internal",
    attributes ? { attributes, captureStackTrace: false } : NO_STACK
  )
  const annotations = fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations)
  if (HashMap.size(annotations) > 0) HashMap.forEach(annotations, (value, key) => span.attribute(key, value))
  if (attributes !== undefined) { for (const [key, value] of Object.entries(attributes)) span.attribute(key, value) }
  return {
    span,
    end: (exit) => {
      if (span.status._tag !== "Ended") span.end(timing ? clock.unsafeCurrentTimeNanos() : BigInt(0), exit)
    }
  }
}

const NO_STACK = { captureStackTrace: false } as const
