/**
 * When the daemon gives memory back after work (IdleCompactor): only once no
 * peer has sent anything for QUIET_MS, only if enough has piled up beyond what
 * the last look could not give back, at most once per MIN_INTERVAL_MS, and
 * with no timer at all while no one talks to it. Driven by a hand-moved clock.
 */
import { describe, expect, it } from "vitest"
import type { CompactionHost } from "../../src/layers/IdleCompaction.js"
import { IdleCompactor, MIN_INTERVAL_MS, QUIET_MS, RECLAIMABLE_BYTES } from "../../src/layers/IdleCompaction.js"

const MiB = 1024 * 1024

/** A process with a clock moved by the test, its timers, and a heap whose reclaimable bytes the test sets. */
const fakeProcess = (startReclaimable = 2 * MiB) => {
  let now = 0
  let reclaimable = startReclaimable
  let timers: Array<{ at: number; run: () => void; cancelled: boolean }> = []
  const compactions: Array<number> = []
  const host: CompactionHost = {
    now: () => now,
    schedule: (look, delay) => {
      const timer = { at: now + delay, run: look, cancelled: false }
      timers.push(timer)
      return { cancel: () => (timer.cancelled = true) }
    },
    reclaimable: () => reclaimable,
    compact: (done) => {
      const before = reclaimable
      compactions.push(now)
      // A compaction gives back all but what is live.
      reclaimable = 1 * MiB
      done({ before, after: reclaimable, pauseMs: 30 })
    }
  }
  return {
    host,
    compactions,
    pendingTimers: () => timers.filter((timer) => !timer.cancelled).length,
    setReclaimable: (bytes: number) => (reclaimable = bytes),
    /** Moves the clock, running each timer that falls due on the way, in order. */
    advance: (ms: number) => {
      const end = now + ms
      for (;;) {
        const due = timers.filter((timer) => !timer.cancelled && timer.at <= end).sort((a, b) => a.at - b.at)[0]
        if (due === undefined) break
        timers = timers.filter((timer) => timer !== due)
        now = due.at
        due.run()
      }
      now = end
    }
  }
}

describe("IdleCompactor", () => {
  it("runs no timer while no peer talks to the daemon", () => {
    const proc = fakeProcess()
    new IdleCompactor(proc.host, () => {})
    proc.setReclaimable(40 * MiB)
    proc.advance(60_000)
    expect(proc.pendingTimers()).toBe(0)
    expect(proc.compactions).toEqual([])
  })

  it("compacts once the peers have been quiet for QUIET_MS after work that left enough behind", () => {
    const proc = fakeProcess()
    const reports: Array<number> = []
    const compactor = new IdleCompactor(proc.host, (report) => reports.push(report.before))
    compactor.noteActivity()
    proc.setReclaimable(2 * MiB + RECLAIMABLE_BYTES + MiB)
    proc.advance(QUIET_MS - 1)
    expect(proc.compactions).toEqual([])
    proc.advance(1)
    expect(proc.compactions).toEqual([QUIET_MS])
    expect(reports).toEqual([2 * MiB + RECLAIMABLE_BYTES + MiB])
    expect(proc.pendingTimers()).toBe(0)
  })

  it("never compacts while requests keep coming, however much piles up", () => {
    const proc = fakeProcess()
    const compactor = new IdleCompactor(proc.host, () => {})
    proc.setReclaimable(100 * MiB)
    for (let i = 0; i < 100; i++) {
      compactor.noteActivity()
      proc.advance(QUIET_MS / 2)
    }
    expect(proc.compactions).toEqual([])
    proc.advance(QUIET_MS)
    expect(proc.compactions.length).toBe(1)
  })

  it("leaves the heap alone when less than RECLAIMABLE_BYTES piled up beyond the last look's remainder", () => {
    const proc = fakeProcess(5 * MiB)
    const compactor = new IdleCompactor(proc.host, () => {})
    proc.setReclaimable(5 * MiB + RECLAIMABLE_BYTES - 1)
    compactor.noteActivity()
    proc.advance(QUIET_MS)
    expect(proc.compactions).toEqual([])
    // What V8 gave back by itself lowers the remainder: growth is counted from there.
    proc.setReclaimable(1 * MiB)
    compactor.noteActivity()
    proc.advance(QUIET_MS)
    proc.setReclaimable(1 * MiB + RECLAIMABLE_BYTES)
    compactor.noteActivity()
    proc.advance(QUIET_MS)
    expect(proc.compactions.length).toBe(1)
  })

  it("compacts at most once per MIN_INTERVAL_MS", () => {
    const proc = fakeProcess()
    const compactor = new IdleCompactor(proc.host, () => {})
    const burst = () => {
      compactor.noteActivity()
      proc.setReclaimable(50 * MiB)
    }
    burst()
    proc.advance(QUIET_MS)
    burst()
    proc.advance(QUIET_MS)
    expect(proc.compactions).toEqual([QUIET_MS])
    // The second look waits out the interval, then compacts if the daemon is still quiet.
    proc.advance(MIN_INTERVAL_MS)
    expect(proc.compactions).toEqual([QUIET_MS, QUIET_MS + MIN_INTERVAL_MS])
  })

  it("cancels its timer when stopped", () => {
    const proc = fakeProcess()
    const compactor = new IdleCompactor(proc.host, () => {})
    compactor.noteActivity()
    expect(proc.pendingTimers()).toBe(1)
    compactor.stop()
    proc.setReclaimable(50 * MiB)
    proc.advance(QUIET_MS * 5)
    expect(proc.compactions).toEqual([])
  })
})
