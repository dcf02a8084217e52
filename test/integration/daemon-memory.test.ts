/**
 * What an operator sees of the daemon giving memory back: once start-up is
 * over, before its socket opens, it compacts its heap (a debug log line says
 * so, with what was in use before and after); and `--log-level` is honoured
 * wherever it stands on the command line.
 */
import { afterAll, describe, expect, it } from "vitest"
import { startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"

afterAll(stopAllDaemons)

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
