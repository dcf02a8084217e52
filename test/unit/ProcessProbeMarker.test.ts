import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { layer as ProcessProbeLive } from "../../src/layers/ProcessProbeLive.js"
import { JOB_MARKER_ENV, ProcessProbe } from "../../src/services/ProcessProbe.js"

/** A real process carrying `marker` in its environment, killed when the test ends. */
const markedSleeper = (marker: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn("sleep", ["30"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", [JOB_MARKER_ENV]: marker } })
    ),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )

describe.skipIf(process.platform !== "linux")("ProcessProbe.markedBy on /proc", () => {
  it.scoped("finds a marked process, and skips it only when asked for processes started after it", () =>
    Effect.gen(function*() {
      const probe = yield* ProcessProbe
      const marker = `job-probe-test-${process.pid}-${Date.now()}`
      const child = yield* markedSleeper(marker)
      const started = yield* probe.entry(child.pid!)
      expect(started).toBeDefined()
      const startTime = started!.startTime

      const all = yield* probe.markedBy(marker)
      expect(all.map((entry) => entry.pid)).toEqual([child.pid])
      expect(all[0]!.startTime).toBe(startTime)

      // The leader's own start time counts: a job's first process is found.
      const sinceItself = yield* probe.markedBy(marker, { startedSince: startTime })
      expect(sinceItself.map((entry) => entry.pid)).toEqual([child.pid])
      const sinceUnknown = yield* probe.markedBy(marker, { startedSince: null })
      expect(sinceUnknown.map((entry) => entry.pid)).toEqual([child.pid])

      // A process started before the given time cannot descend from that leader.
      const later = String(Number(startTime) + 1)
      expect(yield* probe.markedBy(marker, { startedSince: later })).toEqual([])

      // Only the exact NAME=value entry counts.
      expect(yield* probe.markedBy(marker.slice(0, -1))).toEqual([])
    }).pipe(Effect.provide(ProcessProbeLive)))
})
