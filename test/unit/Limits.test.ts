import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Ref, TestClock, TestContext } from "effect"
import { describe, expect, it } from "vitest"
import { parseProcStat } from "../../src/layers/ProcessProbeLive.js"
import { breachOf, LimitMonitor, usageOf } from "../../src/monitor/LimitMonitor.js"
import * as LimitMonitorLive from "../../src/monitor/LimitMonitorLive.js"
import type { JobId } from "../../src/rpc/Ids.js"
import type { CellId } from "../../src/rpc/Ids.js"
import { Job, JobCommand, JobSandbox } from "../../src/rpc/Models.js"
import type { TerminationReason } from "../../src/rpc/Models.js"
import { DaemonConfig } from "../../src/services/DaemonConfig.js"
import type { RunningJob } from "../../src/services/JobRegistry.js"
import { JobRegistry } from "../../src/services/JobRegistry.js"
import { JobSupervisor } from "../../src/services/JobSupervisor.js"
import { checkLimits, effectiveLimits, NO_LIMITS, parseDuration, parseSize } from "../../src/services/Limits.js"
import type { ProcessEntry } from "../../src/services/ProcessProbe.js"
import { ProcessProbe, sumUsage, treeView } from "../../src/services/ProcessProbe.js"

describe("human units", () => {
  it("parses sizes in binary multiples and durations with a unit", () => {
    expect(parseSize("512M")).toBe(512 * 1024 ** 2)
    expect(parseSize("1.5G")).toBe(1.5 * 1024 ** 3)
    expect(parseSize("100MiB")).toBe(100 * 1024 ** 2)
    expect(parseSize("4096")).toBe(4096)
    expect(parseSize("1k")).toBe(1024)
    expect(parseDuration("30s")).toBe(30_000)
    expect(parseDuration("500ms")).toBe(500)
    expect(parseDuration("5m")).toBe(300_000)
    expect(parseDuration("1.5h")).toBe(5_400_000)
  })
  it("refuses nonsense with a sentence", () => {
    for (const bad of ["", "12X", "-1M", "0", "lots", "1e9", "M"]) expect(typeof parseSize(bad), bad).toBe("string")
    for (const bad of ["30", "0s", "-1s", "1y", "soon", "99999999999999999d"]) {
      expect(typeof parseDuration(bad), bad).toBe("string")
    }
  })
  it("checks request limits: positive whole numbers or null", () => {
    expect(checkLimits(null)).toEqual(NO_LIMITS)
    expect(checkLimits({ timeout_ms: 5 })).toEqual({ ...NO_LIMITS, timeout_ms: 5 })
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
      expect((checkLimits({ max_rss_bytes: bad }) as { _tag?: string })._tag, String(bad)).toBe("LimitRejected")
    }
  })
  it("a job tightens its cell's limits, never loosens them; the daemon's log quota fills in", () => {
    const cell = { timeout_ms: 10_000, max_rss_bytes: null, max_log_bytes: null }
    expect(effectiveLimits(cell, NO_LIMITS, 99)).toEqual({ timeout_ms: 10_000, max_rss_bytes: null, max_log_bytes: 99 })
    expect(effectiveLimits(cell, { ...NO_LIMITS, timeout_ms: 5 }, 99)).toMatchObject({ timeout_ms: 5 })
    expect(effectiveLimits(cell, { ...NO_LIMITS, max_log_bytes: 500 }, 99)).toMatchObject({ max_log_bytes: 500 })
    expect((effectiveLimits(cell, { ...NO_LIMITS, timeout_ms: 20_000 }, 99) as { _tag: string })._tag).toBe(
      "LimitRejected"
    )
  })
})

/** A fixture /proc/<pid>/stat line: utime/stime in ticks, rss in pages. */
const stat = (
  pid: number,
  ppid: number,
  pgid: number,
  state: string,
  utime: number,
  stime: number,
  rssPages: number
) => {
  const fields = Array.from({ length: 50 }, () => "0")
  fields[0] = state
  fields[1] = String(ppid)
  fields[2] = String(pgid)
  fields[11] = String(utime)
  fields[12] = String(stime)
  fields[19] = `${pid}00`
  fields[21] = String(rssPages)
  return `${pid} (p ${pid}) ${fields.join(" ")}`
}

const job = (limits: Record<string, number | null> | null, startedAt = 0) =>
  new Job({
    id: "job-test1" as JobId,
    cell_id: "cell-test1" as CellId,
    command: new JobCommand({ argv: ["x"], cwd: "/", env: {}, limits }),
    status: "running",
    exit_code: null,
    signal: null,
    termination_reason: null,
    pid: 100,
    pid_start_time: "10000",
    started_at_ms: startedAt,
    finished_at_ms: null,
    sandbox: new JobSandbox({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null }),
    owner_uid: null
  })

describe("sampling arithmetic against a fixture /proc", () => {
  // 100 leads the job; 101 its child; 102 a grandchild in its own group; 103 a zombie; 200 a stranger.
  const snapshot = [
    stat(100, 1, 100, "S", 30, 10, 1000),
    stat(101, 100, 100, "R", 200, 50, 25_000),
    stat(102, 101, 102, "S", 5, 5, 256),
    stat(103, 100, 100, "Z", 999, 999, 0),
    stat(200, 1, 200, "S", 7, 7, 77_777)
  ].map((line) => parseProcStat(line, 4096, 100)!) as Array<ProcessEntry>

  it("sums RSS (pages × page size) and CPU (ticks / CLK_TCK) over the live tree only", () => {
    const tree = sumUsage(treeView(snapshot, { leaderPid: 100, leaderStartTime: "10000", known: new Map() }).members)
    expect(tree.processes).toBe(3)
    expect(tree.rssBytes).toBe((1000 + 25_000 + 256) * 4096)
    expect(tree.cpuMs).toBe((40 + 250 + 10) * 10)
  })

  it("computes CPU %, elapsed and the peak across samples, and the breach with its observed value", () => {
    const first = usageOf(job(null, 1000), { rssBytes: 500, cpuMs: 100, processes: 2 }, 10, 3000, null)
    expect(first.cpu_percent).toBeNull()
    expect(first.elapsed_ms).toBe(2000)
    const second = usageOf(job(null, 1000), { rssBytes: 300, cpuMs: 600, processes: 2 }, 20, 4000, first)
    expect(second.cpu_percent).toBe(50)
    expect(second.peak_rss_bytes).toBe(500)
    const limits = { timeout_ms: null, max_rss_bytes: 400, max_log_bytes: 15 }
    expect(breachOf(limits, first)).toMatchObject({
      reason: "memory_limit",
      detail: { limit: 400, observed: 500, at_ms: 3000 }
    })
    expect(breachOf(limits, second)).toMatchObject({ reason: "log_quota", detail: { limit: 15, observed: 20 } })
    expect(breachOf({ ...limits, max_rss_bytes: 500, max_log_bytes: 20 }, second)).toBeUndefined()
  })
})

describe("LimitMonitor", () => {
  it("restarts after a failing probe, with a logged cause, and keeps sampling (TestClock)", async () => {
    const program = Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      const ended = yield* Deferred.make<Job>()
      const entry: RunningJob = {
        job: job({ timeout_ms: 5000 }),
        tree: { leaderPid: 100, leaderStartTime: "10000", known: new Map() },
        endReason: yield* Ref.make<TerminationReason | null>(null),
        ended,
        observed: { usage: null, limitDetail: null }
      }
      const probe = ProcessProbe.of({
        snapshot: Effect.flatMap(
          Ref.getAndUpdate(calls, (n) => n + 1),
          (n) =>
            n === 0
              ? Effect.die("injected probe failure")
              : Effect.succeed([parseProcStat(stat(100, 1, 100, "S", 1, 1, 10), 4096, 100)!])
        ),
        entry: () => Effect.succeed(undefined),
        markedBy: () => Effect.succeed([])
      })
      const ends: Array<string> = []
      const supervisor = {
        end: (_id: JobId, reason: string) => Effect.sync(() => ends.push(reason)).pipe(Effect.as(entry.job))
      } as unknown as typeof JobSupervisor.Service
      const registry = {
        all: Effect.succeed([entry]),
        subscribe: Effect.flatMap(
          Effect.succeed(undefined),
          () => Effect.map(Deferred.make<never>(), (never) => ({ take: Deferred.await(never) }))
        ),
        get: () => Option.some(entry)
      } as unknown as typeof JobRegistry.Service
      const layer = LimitMonitorLive.layer.pipe(
        Layer.provide(Layer.mergeAll(
          Layer.succeed(ProcessProbe, probe),
          Layer.succeed(JobSupervisor, supervisor),
          Layer.succeed(JobRegistry, registry),
          DaemonConfig.layer({ stateDir: "/nonexistent", monitorInterval: Duration.seconds(1) } as never)
        ))
      )
      return yield* Effect.scoped(Effect.gen(function*() {
        // Built in this scope, so the monitor's fibers live until the test ends.
        const monitor = Context.get(yield* Layer.build(layer), LimitMonitor)
        for (let i = 0; i < 30; i++) {
          yield* TestClock.adjust("100 millis")
          yield* Effect.sleep("0 millis").pipe(Effect.fork, Effect.flatMap(Fiber.join))
          yield* Effect.yieldNow()
        }
        const stats = yield* monitor.stats
        yield* TestClock.adjust("3 seconds")
        return { stats, usage: entry.observed.usage, ends: [...ends] }
      }))
    })
    const result = await Effect.runPromise(program.pipe(Effect.provide(TestContext.TestContext)))
    expect(result.stats.restarts).toBe(1)
    expect(result.stats.ticks).toBeGreaterThanOrEqual(1)
    expect(result.usage?.rss_bytes).toBe(10 * 4096)
    // The 5 s timeout fired at its deadline on the test clock.
    expect(result.ends).toEqual(["timeout"])
  })
})

void Exit
