/**
 * What an operator sees of the daemon giving memory back: after start-up and
 * after a burst of work it compacts its heap (a debug log line says so, with
 * what was in use before and after), and `--log-level` is honoured wherever
 * it stands on the command line.
 */
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { MIN_COMPACTION_INTERVAL_MS } from "../../src/layers/IdleCompaction.js"
import { make } from "../../src/rpc/client.js"
import { sleep, startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"

afterAll(stopAllDaemons)

interface LogLine {
  readonly level: string
  readonly message: string
  readonly [key: string]: unknown
}

const jsonLines = (output: string): Array<LogLine> =>
  output.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as LogLine)

describe("the daemon's memory after start-up and after a burst of work", () => {
  it("compacts its heap before the socket opens, and again once a burst of jobs is over", async () => {
    const daemon = await startDaemon({ args: ["--log-level", "debug", "--log-format", "json"] })
    const messages = () => jsonLines(daemon.output()).map((line) => line.message)
    const listening = () => messages().findIndex((message) => message.includes(" listening on "))
    await waitFor("the daemon's start-up log", () => listening() >= 0)
    const startUp = jsonLines(daemon.output()).find((line) => line.message === "compacted the heap after start-up")
    expect(startUp?.level).toBe("DEBUG")
    expect(Number(startUp?.["planter.heap.used_after_mib"])).toBeGreaterThan(0)
    expect(messages().indexOf("compacted the heap after start-up")).toBeLessThan(listening())

    // Past the least interval between two compactions, so that the burst's is the next one (and not V8's own
    // memory reducer, which may run ~8 s after a collection the burst causes).
    await sleep(MIN_COMPACTION_INTERVAL_MS)
    // 300 jobs keep the daemon busy for several of its half-second looks and leave ~10 MB of its heap slack.
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const client = yield* make({ socketPath: daemon.socketPath })
      const cell = yield* client.CellCreate({ name: "burst", env: {}, read_paths: [], network: "allow" })
      yield* Effect.forEach(
        Array.from({ length: 300 }),
        () => client.JobRun({ cell_id: cell.id, argv: ["true"], env: {}, cwd: null, network: null }),
        { concurrency: 32 }
      )
    })))
    // At most one compaction every 10 s (MIN_COMPACTION_INTERVAL_MS), counting the start-up one.
    await waitFor(
      "the compaction after the burst",
      () => messages().includes("compacted the heap after a burst of work"),
      10_000
    )
    // An idle daemon then stays idle: its compaction's own work does not count as a burst.
    await sleep(12_000)
    expect(messages().filter((message) => message === "compacted the heap after a burst of work")).toHaveLength(1)
  }, 60_000)

  it("honours --log-level before or after the other options", async () => {
    for (const where of ["first", "last"] as const) {
      const level = ["--log-level", "warning"]
      const daemon = await startDaemon({
        args: where === "first" ? [...level, "--log-format", "json"] : ["--log-format", "json", ...level]
      })
      expect((await daemon.cli(["version"])).code).toBe(0)
      await daemon.stop()
      const levels = new Set(jsonLines(daemon.output()).map((line) => line.level))
      expect({ where, info: levels.has("INFO"), debug: levels.has("DEBUG") }).toEqual({
        where,
        info: false,
        debug: false
      })
    }
  })
})
