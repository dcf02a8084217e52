import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber } from "effect"
import { makeEndDeferral } from "../../src/layers/EndDeferral.js"

describe("EndDeferral", () => {
  it.live("lets an end go at once when no job is starting", () =>
    Effect.gen(function*() {
      const deferral = makeEndDeferral(10_000)
      const fiber = yield* Effect.fork(deferral.quiet)
      yield* Effect.yieldNow()
      expect(fiber.unsafePoll(), "quiet answered").not.toBeNull()
      yield* Fiber.join(fiber)
    }))

  it.live("holds ends while a start is in progress and lets them all go together once none is", () =>
    Effect.gen(function*() {
      const deferral = makeEndDeferral(10_000)
      const gate = yield* Deferred.make<void>()
      const start = yield* Effect.fork(deferral.starting(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const order: Array<string> = []
      const ends = yield* Effect.forEach(
        ["a", "b", "c"],
        (name) => Effect.fork(Effect.zipRight(deferral.quiet, Effect.sync(() => order.push(name)))),
        { concurrency: "unbounded" }
      )
      yield* Effect.sleep("30 millis")
      expect(order, "ended while a job was starting").toEqual([])
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(start)
      yield* Fiber.joinAll(ends)
      expect(order.sort()).toEqual(["a", "b", "c"])
    }))

  it.live("also counts a start that fails, and a start that is interrupted", () =>
    Effect.gen(function*() {
      const deferral = makeEndDeferral(10_000)
      yield* Effect.flip(deferral.starting(Effect.fail("refused")))
      const stuck = yield* Effect.fork(deferral.starting(Effect.never))
      yield* Effect.yieldNow()
      const end = yield* Effect.fork(deferral.quiet)
      yield* Effect.sleep("20 millis")
      expect(end.unsafePoll(), "held while the stuck start runs").toBeNull()
      yield* Fiber.interrupt(stuck)
      yield* Fiber.join(end)
    }))

  it.live("lets ends go after its bound while a start is still in progress", () =>
    Effect.gen(function*() {
      const deferral = makeEndDeferral(20)
      const stuck = yield* Effect.fork(deferral.starting(Effect.never))
      yield* Effect.yieldNow()
      yield* Effect.forEach([1, 2], () => deferral.quiet, { concurrency: "unbounded" })
      expect(stuck.unsafePoll(), "the start still runs").toBeNull()
      yield* Fiber.interrupt(stuck)
    }))

  it.live("while starts go on, lets each end go at its own bound, not with the first end's", () =>
    Effect.gen(function*() {
      const deferral = makeEndDeferral(200)
      const stuck = yield* Effect.fork(deferral.starting(Effect.never))
      yield* Effect.yieldNow()
      const first = yield* Effect.fork(deferral.quiet)
      yield* Effect.sleep("120 millis")
      const later = yield* Effect.fork(deferral.quiet)
      yield* Effect.yieldNow()
      yield* Fiber.join(first)
      // The first end's bound ran out ~120 ms before the later one's: the later one waits on.
      expect(later.unsafePoll(), "the later end, 80 ms into its 200").toBeNull()
      const waited = yield* Effect.timed(Fiber.join(later))
      expect(Duration.toMillis(waited[0]), "the later end waited for its own bound").toBeGreaterThan(30)
      expect(stuck.unsafePoll(), "the start still runs").toBeNull()
      yield* Fiber.interrupt(stuck)
    }))

  it.live("lets ends whose bounds run out within 10 ms go together, and the next one at its own bound", () =>
    Effect.gen(function*() {
      const deferral = makeEndDeferral(150)
      const stuck = yield* Effect.fork(deferral.starting(Effect.never))
      yield* Effect.yieldNow()
      const first = yield* Effect.fork(deferral.quiet)
      yield* Effect.sleep("2 millis")
      const close = yield* Effect.fork(deferral.quiet)
      yield* Effect.sleep("80 millis")
      const later = yield* Effect.fork(deferral.quiet)
      yield* Effect.yieldNow()
      yield* Fiber.join(first)
      yield* Effect.yieldNow()
      expect(close.unsafePoll(), "the end due 2 ms after the first").not.toBeNull()
      expect(later.unsafePoll(), "the end due 80 ms after the first").toBeNull()
      yield* Fiber.join(later)
      yield* Fiber.interrupt(stuck)
    }))

  it.live("an end interrupted while it waits is forgotten: the next one still goes at its own bound", () =>
    Effect.gen(function*() {
      const deferral = makeEndDeferral(60)
      const stuck = yield* Effect.fork(deferral.starting(Effect.never))
      yield* Effect.yieldNow()
      const gone = yield* Effect.fork(deferral.quiet)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(gone)
      const next = yield* Effect.fork(deferral.quiet)
      yield* Effect.yieldNow()
      const [waited] = yield* Effect.timed(Fiber.join(next))
      expect(Duration.toMillis(waited)).toBeGreaterThan(40)
      yield* Fiber.interrupt(stuck)
    }))

  it.live("calls onQuiet once no start has been in progress for a whole turn, and says whether one is", () =>
    Effect.gen(function*() {
      let quiet = 0
      const deferral = makeEndDeferral(10_000, () => quiet++)
      const gate = yield* Deferred.make<void>()
      const start = yield* Effect.fork(deferral.starting(Deferred.await(gate)))
      yield* Effect.yieldNow()
      expect(deferral.busy()).toBe(true)
      yield* Effect.sleep("20 millis")
      expect(quiet, "while a start is in progress").toBe(0)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(start)
      expect(deferral.busy()).toBe(false)
      yield* Effect.sleep("20 millis")
      expect(quiet).toBe(1)
    }))
})
