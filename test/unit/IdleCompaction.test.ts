import { describe, expect, it } from "@effect/vitest"
import { BUSY_CPU_MICROS, decide, SLACK_WORTH_COMPACTING } from "../../src/layers/IdleCompaction.js"
import { randomBytes } from "../../src/layers/KernelRandom.js"

const quiet = 1_000
const busy = BUSY_CPU_MICROS + 1
const slack = SLACK_WORTH_COMPACTING

describe("when the daemon compacts its heap", () => {
  it("once per burst: on the first quiet look after a busy one, if enough heap is slack", () => {
    let state = { busySinceCompaction: false }
    const steps: Array<boolean> = []
    for (const cpu of [quiet, busy, busy, quiet, quiet, busy, quiet]) {
      const decision = decide(state, cpu, slack)
      steps.push(decision.compact)
      state = decision.next
    }
    expect(steps).toEqual([false, false, false, true, false, false, true])
  })

  it("waits, still armed, while too little heap is slack", () => {
    const armed = { busySinceCompaction: true }
    expect(decide(armed, quiet, slack - 1)).toEqual({ compact: false, next: armed })
    expect(decide(armed, quiet, slack).compact).toBe(true)
  })

  it("never while the daemon stays busy", () => {
    expect(decide({ busySinceCompaction: true }, busy, 100 * slack)).toEqual({
      compact: false,
      next: { busySinceCompaction: true }
    })
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
