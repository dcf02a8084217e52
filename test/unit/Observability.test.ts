import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Layer, Logger, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { renderTree } from "../../src/cli/DebugCommand.js"
import { jsonLogger } from "../../src/layers/DaemonLogger.js"
import { followEvents } from "../../src/layers/EventsFeed.js"
import { FiberTreeSupervisor, snapshot } from "../../src/layers/FiberTree.js"
import * as StateRepositorySqlite from "../../src/layers/StateRepositorySqlite.js"
import type { CellId } from "../../src/rpc/Ids.js"
import { FiberInfo } from "../../src/rpc/Models.js"
import { JournalFeed } from "../../src/services/JournalFeed.js"
import { StateRepository } from "../../src/services/StateRepository.js"
import { tracesUrl } from "../../src/services/Tracing.js"

describe("tracesUrl", () => {
  it("is off without a flag or an OTEL endpoint", () => {
    expect(tracesUrl(undefined, {})).toBeUndefined()
    expect(tracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: " " })).toBeUndefined()
  })
  it("appends /v1/traces to a base endpoint; the flag wins over the variables", () => {
    expect(tracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" })).toBe(
      "http://collector:4318/v1/traces"
    )
    expect(tracesUrl("http://127.0.0.1:4318", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://other:4318" })).toBe(
      "http://127.0.0.1:4318/v1/traces"
    )
  })
  it("takes a traces endpoint as the full URL", () => {
    expect(tracesUrl(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom" })).toBe(
      "http://c:4318/custom"
    )
  })
})

describe("jsonLogger", () => {
  it.effect("writes one JSON line with the span's trace and span ids and the fiber's annotations", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const write = process.stdout.write
      process.stdout.write = ((chunk: string) => lines.push(chunk) > 0) as unknown as typeof process.stdout.write
      const span = yield* Effect.gen(function*() {
        yield* Effect.logInfo("hello", 42)
        return yield* Effect.currentSpan
      }).pipe(
        Effect.annotateLogs({ "planter.job.id": "job-x" }),
        Effect.withSpan("unit"),
        Effect.provide(Logger.replace(Logger.defaultLogger, jsonLogger)),
        Effect.ensuring(Effect.sync(() => (process.stdout.write = write)))
      )
      expect(lines).toHaveLength(1)
      const line = JSON.parse(lines[0]!)
      expect(line).toEqual(expect.objectContaining({
        level: "INFO",
        message: "hello 42",
        trace_id: span.traceId,
        span_id: span.spanId,
        "planter.job.id": "job-x"
      }))
    }))
})

describe("FiberTree", () => {
  it.effect("sees a forked fiber with its parent, labels and current span; not once it ended", () =>
    Effect.gen(function*() {
      const tree = new FiberTreeSupervisor()
      const started = yield* Deferred.make<void>()
      const { child, dump } = yield* Effect.gen(function*() {
        const child = yield* Deferred.succeed(started, undefined).pipe(
          Effect.zipRight(Effect.never),
          Effect.withSpan("waiting"),
          Effect.annotateLogs({ "planter.fiber": "job", "planter.job.id": "job-1" }),
          Effect.fork
        )
        yield* Deferred.await(started)
        return { child, dump: yield* snapshot(tree) }
      }).pipe(Effect.supervised(tree), Effect.fork, Effect.flatMap(Fiber.join))
      const info = dump.find((fiber) => fiber.id === child.id().id)
      expect(info).toEqual(expect.objectContaining({
        status: "suspended",
        span: "waiting",
        labels: { "planter.fiber": "job", "planter.job.id": "job-1" }
      }))
      expect(info!.parent_id).not.toBeNull()
      yield* Fiber.interrupt(child)
      expect(tree.fibers.has(child as never)).toBe(false)
    }))
})

describe("renderTree", () => {
  const fiber = (id: number, parent: number | null, labels: Record<string, string>, span: string | null = null) =>
    new FiberInfo({
      id,
      parent_id: parent,
      status: "suspended",
      blocked_on: [],
      labels,
      span,
      span_ms: span ? 1500 : null,
      started_at_ms: 0
    })
  it("nests fibers under their parents and hides unlabelled leaves", () => {
    const lines = renderTree([
      fiber(1, null, {}),
      fiber(2, 1, { "planter.fiber": "monitor" }),
      fiber(3, 1, {}),
      fiber(4, 1, { "planter.fiber": "job", "planter.job.id": "job-a" }, "job.supervise")
    ], false)
    expect(lines).toEqual([
      "#1 suspended  -",
      "  #2 suspended  monitor",
      "  #4 suspended  job job-a  in job.supervise for 1.5s"
    ])
  })
})

describe("followEvents", () => {
  it.scopedLive(
    "streams the history after the cursor, then each event as it is journaled",
    () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "planter-feed-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        const context = yield* Layer.build(
          StateRepositorySqlite.layer(path.join(dir, "planter.db")).pipe(Layer.provideMerge(JournalFeed.layer))
        )
        const repo = context.unsafeMap.get(StateRepository.key) as StateRepository["Type"]
        const feed = context.unsafeMap.get(JournalFeed.key) as JournalFeed["Type"]
        const cell = "cell-feed" as CellId
        yield* repo.appendEvent({ kind: "cell_created", cell_id: cell, job_id: null, detail: { n: 1 } })
        const received = yield* Stream.take(
          followEvents(repo, feed, { sinceMs: null, cellId: cell, jobId: null }, null),
          3
        ).pipe(
          Stream.runCollect,
          Effect.fork
        )
        // The follower subscribes before it reads the history; these come after, pushed by the feed.
        yield* Effect.sleep("50 millis")
        yield* repo.appendEvent({
          kind: "cell_created",
          cell_id: "cell-other" as CellId,
          job_id: null,
          detail: { n: 2 }
        })
        yield* repo.appendEvent({ kind: "request", cell_id: cell, job_id: null, detail: { n: 3 } })
        yield* repo.appendEvent({ kind: "cell_removed", cell_id: cell, job_id: null, detail: { n: 4 } })
        const events = Chunk.toArray(yield* Fiber.join(received))
        expect(events.map((event) => event.detail.n)).toEqual([1, 3, 4])
      }),
    { timeout: 20_000 }
  )
})
