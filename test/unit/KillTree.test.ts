import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as ProcessProbeLive from "../../src/layers/ProcessProbeLive.js"
import { killTree } from "../../src/services/KillTree.js"
import { ProcessProbe } from "../../src/services/ProcessProbe.js"

/** A process that is no job's: detached, so it leads a group of its own, as a stranger reusing a pid would. */
const spawnStranger = Effect.acquireRelease(
  Effect.sync(() => spawn("sleep", ["30"], { detached: true, stdio: "ignore" })),
  (child) => Effect.sync(() => child.kill("SIGKILL"))
)

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("killTree and process identity", () => {
  it.scoped("never signals a pid, or its group, that is not the recorded process", () =>
    Effect.gen(function*() {
      const stranger = yield* spawnStranger
      const pid = stranger.pid!
      // The job's leader was recorded with another start time: this pid was reused.
      const killed = yield* killTree({ leaderPid: pid, leaderStartTime: "1", known: new Map([[pid, "1"]]) }, {
        force: true,
        grace: "1 second"
      })
      expect(killed).toEqual([])
      expect(alive(pid)).toBe(true)
    }).pipe(Effect.provide(ProcessProbeLive.layer)))

  // The live clock: under it.scoped's TestClock the grace period's polling sleep never wakes, so the
  // test hung whenever the first look after SIGTERM still saw the process (a race that load decides).
  it.scopedLive("kills the recorded process when pid and start time match", () =>
    Effect.gen(function*() {
      const probe = yield* ProcessProbe
      const job = yield* spawnStranger
      const pid = job.pid!
      const startTime = (yield* probe.entry(pid))!.startTime
      const exited = new Promise((resolve) => job.once("exit", resolve))
      yield* killTree({ leaderPid: pid, leaderStartTime: startTime, known: new Map() }, {
        force: false,
        grace: "2 seconds"
      })
      yield* Effect.promise(() => exited)
      expect(alive(pid)).toBe(false)
    }).pipe(Effect.provide(ProcessProbeLive.layer)))
})
