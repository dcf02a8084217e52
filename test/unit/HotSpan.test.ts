import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Option, Tracer } from "effect"

class Marker extends Context.Tag("test/Marker")<Marker, string>() {}
import { hotSpan } from "../../src/services/HotSpan.js"
import { recordingTracer } from "../support/tracing.js"

type Wrap = (name: string, attributes?: Record<string, unknown>) => <A, E>(
  self: Effect.Effect<A, E>
) => Effect.Effect<A, E>

const effectWithSpan: Wrap = (name, attributes) => (self) =>
  Effect.withSpan(self, name, { captureStackTrace: false, ...(attributes ? { attributes } : {}) })

/** What a trace backend would see of a span, and which span the code around it saw. */
const described = (span: Tracer.Span, byId: Map<string, string>) => ({
  name: span.name,
  parent: Option.match(span.parent, { onNone: () => null, onSome: (parent) => byId.get(parent.spanId) ?? "external" }),
  attributes: Object.fromEntries(span.attributes),
  links: span.links.map((link) => byId.get(link.span.spanId) ?? "external"),
  ended: span.status._tag === "Ended",
  exit: span.status._tag === "Ended"
    ? Exit.match(span.status.exit, {
      onFailure: (cause) => (Cause.isInterruptedOnly(cause) ? "interrupted" : `failed: ${Cause.pretty(cause)}`),
      onSuccess: (value) => `succeeded: ${String(value)}`
    })
    : "open"
})

/**
 * Runs `program(wrap)` under a tracer that records every span, and says what it made and what the program saw:
 * the same program with Effect.withSpan and with hotSpan must be indistinguishable.
 */
const observe = <A>(program: (wrap: Wrap) => Effect.Effect<A, unknown>, wrap: Wrap) =>
  Effect.gen(function*() {
    const { made, tracer } = yield* recordingTracer
    const result = yield* Effect.exit(program(wrap).pipe(Effect.withTracer(tracer)))
    const byId = new Map(made.map((span) => [span.spanId, span.name]))
    return {
      spans: made.map((span) => described(span, byId)),
      result: Exit.match(result, {
        onFailure: (cause) => (Cause.isInterruptedOnly(cause) ? "interrupted" : `failed: ${Cause.pretty(cause)}`),
        onSuccess: (value) => `succeeded: ${JSON.stringify(value)}`
      })
    }
  })

const spanName = Effect.map(Effect.currentSpan, (span) => span.name).pipe(Effect.orElseSucceed(() => "none"))

const scenarios: Record<string, (wrap: Wrap) => Effect.Effect<unknown, unknown>> = {
  "a child of the current span, seen inside, the outer one current again after": (wrap) =>
    Effect.gen(function*() {
      const inside = yield* spanName.pipe(wrap("inner", { "planter.job.id": "job-1", pid: 7 }))
      return [inside, yield* spanName]
    }).pipe(Effect.withSpan("outer")),
  "nested spans, each under the last": (wrap) =>
    Effect.all([spanName.pipe(wrap("c")), spanName]).pipe(wrap("b"), wrap("a"), Effect.withSpan("root")),
  "a root span when none is current": (wrap) => spanName.pipe(wrap("alone")),
  "a failure ends the span with it and leaves the context as it was": (wrap) =>
    Effect.fail("no space left").pipe(
      wrap("fails"),
      Effect.catchAll((error) => Effect.map(spanName, (after) => [error, after])),
      Effect.withSpan("outer")
    ),
  "a defect ends the span with it": (wrap) => Effect.die("boom").pipe(wrap("dies"), Effect.withSpan("outer")),
  "an interruption ends the span as interrupted": (wrap) =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.never.pipe(wrap("waits"), Effect.withSpan("outer")))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      return "interrupted it"
    }),
  "the span's annotations and links from the environment": (wrap) =>
    Effect.gen(function*() {
      const other = yield* Effect.makeSpan("other")
      return yield* spanName.pipe(
        wrap("annotated", { own: "yes" }),
        Effect.annotateSpans({ "from.env": "1" }),
        Effect.linkSpans(other),
        Effect.withSpan("outer")
      )
    }),
  "annotateCurrentSpan inside annotates this span": (wrap) =>
    Effect.annotateCurrentSpan({ pid: 42 }).pipe(wrap("annotated inside"), Effect.withSpan("outer")),
  "a forked fiber's spans are children of this one": (wrap) =>
    Effect.fork(Effect.withSpan(spanName, "in the fork")).pipe(
      Effect.flatMap(Fiber.join),
      wrap("forks"),
      Effect.withSpan("outer")
    ),
  "a body that provides a service: its context is left behind, the outer span current again": (wrap) =>
    Effect.gen(function*() {
      const inside = yield* Effect.provideService(spanName, Marker, "set inside").pipe(wrap("provides"))
      const after = yield* Effect.serviceOption(Marker)
      return [inside, after._tag, yield* spanName]
    }).pipe(Effect.withSpan("outer")),
  "after a defect or an interruption the outer span is current again": (wrap) =>
    Effect.gen(function*() {
      const afterDefect = yield* Effect.die("boom").pipe(wrap("dies"), Effect.catchAllDefect(() => spanName))
      const afterInterrupt = yield* Effect.interrupt.pipe(
        wrap("interrupted"),
        Effect.catchAllCause(() => spanName),
        Effect.uninterruptible
      )
      return [afterDefect, afterInterrupt]
    }).pipe(Effect.withSpan("outer")),
  "under a parent that disables propagation: what Effect.withSpan makes": (wrap) =>
    spanName.pipe(wrap("below"), Effect.withSpan("quiet", { context: Context.make(Tracer.DisablePropagation, true) })),
  "tracing turned off: no span, as Effect.withSpan makes none": (wrap) =>
    spanName.pipe(wrap("off"), Effect.withTracerEnabled(false), Effect.withSpan("outer"))
}

describe("hotSpan", () => {
  for (const [name, program] of Object.entries(scenarios)) {
    it.effect(`makes what Effect.withSpan makes: ${name}`, () =>
      Effect.gen(function*() {
        const expected = yield* observe(program, effectWithSpan)
        const actual = yield* observe(program, hotSpan)
        expect(actual).toStrictEqual(expected)
        // Not vacuous: every scenario but the last makes the span it names.
        if (!name.startsWith("tracing turned off") && !name.startsWith("under a parent that disables")) {
          expect(actual.spans.some((span) => span.ended && span.name !== "outer" && span.name !== "root")).toBe(true)
        }
      }))
  }

  it.live("times the span with the clock: it lasts as long as its body", () =>
    Effect.gen(function*() {
      const timed = yield* Effect.sleep("20 millis").pipe(
        Effect.zipRight(Effect.currentSpan),
        hotSpan("timed"),
        Effect.withSpan("outer")
      )
      expect(timed.name).toBe("timed")
      expect(timed.status._tag).toBe("Ended")
      if (timed.status._tag !== "Ended") return
      const millis = Number(timed.status.endTime - timed.status.startTime) / 1e6
      expect(millis).toBeGreaterThanOrEqual(19)
    }))
})
