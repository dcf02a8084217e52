import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as LogReaderLive from "../../src/layers/LogReaderLive.js"
import type { JobId } from "../../src/rpc/Ids.js"
import { defaultPolicy } from "../../src/services/Authz.js"
import { DaemonConfig, statePaths } from "../../src/services/DaemonConfig.js"
import { UnknownEntity } from "../../src/services/DomainErrors.js"
import type { JobRegistryShape } from "../../src/services/JobRegistry.js"
import { JobRegistry } from "../../src/services/JobRegistry.js"
import type { JobSupervisorShape } from "../../src/services/JobSupervisor.js"
import { JobSupervisor } from "../../src/services/JobSupervisor.js"
import { logFileName, LogReader } from "../../src/services/LogReader.js"

const jobId = "job-t1" as JobId

/**
 * Doubles that know one job, running until `finish` completes. Members a
 * test has no business calling fail loudly.
 */
const fakeJobServices = (finish: Deferred.Deferred<void>) => {
  const unexpected = (name: string) => () => Effect.die(`${name} was not expected in this test`)
  let running = true
  const supervisor: JobSupervisorShape = {
    run: unexpected("JobSupervisor.run"),
    adopt: unexpected("JobSupervisor.adopt"),
    list: unexpected("JobSupervisor.list"),
    page: unexpected("JobSupervisor.page"),
    kill: unexpected("JobSupervisor.kill"),
    end: unexpected("JobSupervisor.end"),
    stopCell: unexpected("JobSupervisor.stopCell"),
    writeStdin: unexpected("JobSupervisor.writeStdin"),
    degraded: Effect.die("JobSupervisor.degraded was not expected"),
    get: (
      id
    ) => (id === jobId
      ? Effect.succeed({ started_at_ms: 5 } as never)
      : Effect.fail(new UnknownEntity({ message: `no job ${id}` })))
  }
  const registry: JobRegistryShape = {
    add: unexpected("JobRegistry.add"),
    remove: unexpected("JobRegistry.remove"),
    // The marks sampler asks every tick; it has its own test through reads below.
    all: Effect.succeed([]),
    count: Effect.die("JobRegistry.count was not expected"),
    subscribe: Effect.die("JobRegistry.subscribe was not expected"),
    // The reader only asks whether the job runs; the entry's contents are not its business.
    get: (id) => (id === jobId && running ? Option.some(undefined as never) : Option.none()),
    awaitEnded: () => Deferred.await(finish).pipe(Effect.tap(() => Effect.sync(() => (running = false))))
  }
  return Layer.merge(Layer.succeed(JobSupervisor, supervisor), Layer.succeed(JobRegistry, registry))
}

const setup = Effect.gen(function*() {
  const stateDir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "planter-logs-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  fs.mkdirSync(statePaths(stateDir).logs)
  const file = path.join(statePaths(stateDir).logs, logFileName(jobId, "stdout"))
  fs.writeFileSync(file, "")
  const finish = yield* Deferred.make<void>()
  const layer = LogReaderLive.layer.pipe(
    Layer.provide(fakeJobServices(finish)),
    Layer.provide(DaemonConfig.layer({
      socketPath: path.join(stateDir, "s.sock"),
      stateDir,
      sandboxMode: "disabled",
      keepJobs: false,
      killGrace: Duration.seconds(1),
      authz: defaultPolicy(0)
    }))
  )
  const reader = yield* Effect.provide(LogReader, layer)
  const read = (offset: number, options: { maxBytes?: number; follow?: boolean; waitMs?: number } = {}) =>
    reader.read({
      jobId,
      stream: "stdout",
      offset,
      maxBytes: options.maxBytes ?? 1024,
      follow: options.follow ?? false,
      waitMs: options.waitMs ?? 0
    })
  const readJob = (id: JobId) =>
    reader.read({ jobId: id, stream: "stdout", offset: 0, maxBytes: 16, follow: false, waitMs: 0 })
  /** Marks the job finished the way the supervisor would: after its last write. */
  const finishJob = Deferred.succeed(finish, undefined)
  return { file, read, readJob, finishJob, reader }
})

const text = (data: Uint8Array) => Buffer.from(data).toString("utf8")

describe("LogReader", () => {
  it.scopedLive("reads bounded chunks by offset, and says when it reached the end", () =>
    Effect.gen(function*() {
      const { file, read } = yield* setup
      fs.writeFileSync(file, "hello world")
      const first = yield* read(0, { maxBytes: 5 })
      expect([text(first.data), first.offset, first.eof, first.complete]).toEqual(["hello", 5, false, false])
      const rest = yield* read(first.offset)
      expect([text(rest.data), rest.offset, rest.eof, rest.complete]).toEqual([" world", 11, true, false])
      const none = yield* read(11)
      expect([none.data.length, none.offset, none.eof]).toEqual([0, 11, true])
    }))

  // Chunk sizes, offsets and waits out of bounds never reach the reader: LogsReadPayload refuses them
  // (test/unit/RequestValidation.test.ts). What needs the job's record stays here.
  it.scopedLive("refuses unknown jobs", () =>
    Effect.gen(function*() {
      const { readJob } = yield* setup
      expect(yield* Effect.flip(readJob("job-other" as JobId))).toMatchObject({ _tag: "UnknownEntity" })
    }))

  it.scopedLive("wakes a follower when bytes are appended, well before its wait runs out", () =>
    Effect.gen(function*() {
      const { file, read } = yield* setup
      const follower = yield* Effect.fork(read(0, { follow: true, waitMs: 30_000 }))
      yield* Effect.sleep("50 millis")
      fs.appendFileSync(file, "late line\n")
      const chunk = yield* Fiber.join(follower).pipe(Effect.timeout("10 seconds"))
      expect(text(chunk.data)).toBe("late line\n")
    }))

  it.scopedLive("marks when it saw the log grow, pages the marks, and opens the file read-only for a hand-over", () =>
    Effect.gen(function*() {
      const { file, read, reader } = yield* setup
      fs.writeFileSync(file, "ab")
      yield* read(0)
      fs.appendFileSync(file, "cd")
      yield* read(2)
      yield* read(4) // no growth: no new mark
      const all = yield* reader.marks(jobId, "stdout", null, 10)
      expect(all.marks.map(([offset]) => offset)).toEqual([2, 4])
      expect(all.marks[0]![1]).toBeLessThanOrEqual(all.marks[1]![1])
      expect([all.startedAtMs, all.more]).toEqual([5, false])
      expect(yield* reader.marks(jobId, "stdout", null, 1)).toMatchObject({
        marks: [[2, all.marks[0]![1]]],
        more: true
      })
      expect((yield* reader.marks(jobId, "stdout", 2, 10)).marks.map(([offset]) => offset)).toEqual([4])

      const opened = yield* Effect.scoped(Effect.gen(function*() {
        const log = yield* reader.open(jobId, "stdout")
        const buffer = Buffer.alloc(16)
        const n = fs.readSync(log.fd!, buffer, 0, 16, 0)
        return { size: log.size, text: buffer.subarray(0, n).toString() }
      }))
      expect([opened.size, opened.text]).toEqual([4, "abcd"])
      const missing = yield* Effect.scoped(reader.open(jobId, "stderr"))
      expect(missing).toEqual({ fd: null, size: 0, complete: false })
    }))

  it.scopedLive("answers complete once the job finished and everything is read, and rejects offsets past its end", () =>
    Effect.gen(function*() {
      const { file, finishJob, read } = yield* setup
      fs.writeFileSync(file, "abc")
      const waiting = yield* Effect.fork(read(3, { follow: true, waitMs: 30_000 }))
      yield* Effect.sleep("20 millis")
      yield* finishJob
      const last = yield* Fiber.join(waiting).pipe(Effect.timeout("10 seconds"))
      expect([last.data.length, last.offset, last.eof, last.complete]).toEqual([0, 3, true, true])
      const all = yield* read(0)
      expect([text(all.data), all.complete]).toEqual(["abc", true])
      expect(yield* Effect.flip(read(4))).toMatchObject({ _tag: "InvalidInput" })
    }))
})
