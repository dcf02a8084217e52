import { describe, expect, it } from "@effect/vitest"
import {
  BUSY_CPU_MICROS,
  decide,
  MIN_COMPACTION_INTERVAL_MS,
  type QuietState,
  SLACK_WORTH_COMPACTING
} from "../../src/layers/IdleCompaction.js"
import { randomBytes } from "../../src/layers/KernelRandom.js"

const quiet = 1_000
const busy = BUSY_CPU_MICROS + 1
const slack = SLACK_WORTH_COMPACTING

describe("when the daemon compacts its heap", () => {
  const run = (looks: ReadonlyArray<{ readonly cpu: number; readonly slack?: number }>, stepMs = 500) => {
    let state: QuietState = { busySinceCompaction: false, quietLooks: 0, lastCompactionMs: 0 }
    return looks.map((look, index) => {
      const decision = decide(state, {
        cpuMicros: look.cpu,
        slackBytes: look.slack ?? slack,
        nowMs: MIN_COMPACTION_INTERVAL_MS + index * stepMs
      })
      state = decision.next
      return decision.compact
    })
  }
  const q = { cpu: quiet }
  const b = { cpu: busy }

  it("once per burst, after a second of quiet, if enough heap is slack", () => {
    expect(run([q, b, b, q, q, q, q])).toEqual([false, false, false, false, true, false, false])
  })

  it("not while the daemon alternates busy and quiet looks, nor while it stays busy", () => {
    expect(run([b, q, b, q, b, q, b, q, b, q]).some(Boolean)).toBe(false)
    expect(run(Array.from({ length: 40 }, () => b)).some(Boolean)).toBe(false)
  })

  it("waits, still armed, while too little heap is slack", () => {
    expect(run([b, q, { cpu: quiet, slack: slack - 1 }, { cpu: quiet, slack: slack - 1 }, q])).toEqual([
      false,
      false,
      false,
      false,
      true
    ])
  })

  it("at most once every MIN_COMPACTION_INTERVAL_MS, however often bursts end", () => {
    const bursts = Array.from({ length: 40 }, (_, index) => (index % 4 === 0 ? b : q))
    const compactions = run(bursts, 1_000).flatMap((compact, index) => (compact ? [index * 1_000] : []))
    expect(compactions.length).toBeGreaterThan(1)
    compactions.slice(1).forEach((at, index) =>
      expect(at - compactions[index]!).toBeGreaterThanOrEqual(MIN_COMPACTION_INTERVAL_MS)
    )
  })
})

describe("the daemon's random bytes (/dev/urandom)", () => {
  it("are as many as asked, and differ from one draw to the next", () => {
    expect(randomBytes(0).length).toBe(0)
    const draws = Array.from({ length: 8 }, () => randomBytes(32).toString("hex"))
    expect(draws.every((draw) => draw.length === 64)).toBe(true)
    expect(new Set(draws).size).toBe(8)
  })
})
