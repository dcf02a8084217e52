/**
 * What an operator sees of the daemon giving memory back: once start-up is
 * over, before its socket opens, it compacts its heap (a debug log line says
 * so, with what was in use before and after); after a large log read, once
 * no peer has sent anything for a second, it gives back what the read left
 * (and not while requests keep coming); and `--log-level` is honoured
 * wherever it stands on the command line.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { afterAll, describe, expect, it } from "vitest"
import { make, type PlanterClientShape } from "../../src/rpc/client.js"
import type { JobId } from "../../src/rpc/Ids.js"
import { sleep, startDaemon, stopAllDaemons, waitFor, waitForJobEnd } from "../support/daemon.js"

afterAll(stopAllDaemons)

const MiB = 1024 * 1024

const rssBytes = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024

interface LogLine {
  readonly level: string
  readonly message: string
  readonly [key: string]: unknown
}

const jsonLines = (output: string): Array<LogLine> =>
  output.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as LogLine)

describe("the daemon's memory after start-up", () => {
  it("compacts its heap before the socket opens", async () => {
    const daemon = await startDaemon({ args: ["--log-level", "debug", "--log-format", "json"] })
    const messages = () => jsonLines(daemon.output()).map((line) => line.message)
    const listening = () => messages().findIndex((message) => message.includes(" listening on "))
    await waitFor("the daemon's start-up log", () => listening() >= 0)
    const startUp = jsonLines(daemon.output()).find((line) => line.message === "compacted the heap after start-up")
    expect(startUp?.level).toBe("DEBUG")
    expect(Number(startUp?.["planter.heap.used_after_mib"])).toBeGreaterThan(0)
    expect(messages().indexOf("compacted the heap after start-up")).toBeLessThan(listening())
  })

  it("gives back what a large log read left once no peer has sent anything for a second", async () => {
    const daemon = await startDaemon({ args: ["--log-level", "debug", "--log-format", "json"] })
    const compactions = () =>
      jsonLines(daemon.output()).filter((line) => line.message === "compacted the heap after a quiet second")
    const withClient = <A, E>(f: (client: PlanterClientShape) => Effect.Effect<A, E>) =>
      Effect.runPromise(Effect.scoped(Effect.flatMap(make({ socketPath: daemon.socketPath }), f)))
    const cell = await daemon.json<{ id: string }>(["create", "--name", "reads"])
    const job = await daemon.json<{ id: JobId }>(["run", cell.id, "--", "head", "-c", String(64 * MiB), "/dev/zero"])
    await waitForJobEnd(daemon, job.id)
    await sleep(1500)
    const rssBefore = rssBytes(daemon.pid)
    // Read through LogsRead (the path without a descriptor handed over): each 4 MiB chunk is a Buffer of the daemon's.
    const read = await withClient((client) =>
      Effect.gen(function*() {
        let offset = 0
        for (;;) {
          const chunk = yield* client.LogsRead({
            job_id: job.id,
            stream: "stdout",
            offset,
            max_bytes: 4 * MiB,
            follow: false,
            wait_ms: 0
          })
          offset = chunk.offset
          if (chunk.complete || chunk.data.length === 0) return offset
        }
      })
    )
    expect(read).toBe(64 * MiB)
    // Requests every 300 ms: the daemon is not quiet, and nothing pauses it. From this process, not a CLI
    // process per request: on a loaded machine a CLI's start-up alone can leave the daemon a quiet second.
    await withClient((client) =>
      Effect.gen(function*() {
        for (let i = 0; i < 8; i++) {
          yield* client.Health()
          yield* Effect.sleep(300)
        }
      })
    )
    expect(compactions()).toEqual([])
    // Then quiet: what the read left goes back (by this compaction, or by V8 if it collected first).
    await waitFor(
      "the daemon's RSS within 5 MiB of what it was before the read",
      () => rssBytes(daemon.pid) <= rssBefore + 5 * MiB,
      10_000
    )
    for (const compaction of compactions()) {
      expect(compaction.level).toBe("DEBUG")
      expect(Number(compaction["planter.heap.reclaimable_before_mib"])).toBeGreaterThanOrEqual(8)
    }
  })

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
