import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { LogGrowth } from "../../src/layers/LogGrowth.js"

/** Asks until the answer is true (an inotify event arrives on the event loop), for at most 5 s. */
const eventually = async (ask: () => boolean) => {
  const deadline = Date.now() + 5000
  while (Date.now() < deadline) {
    if (ask()) return true
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return false
}

describe("LogGrowth", () => {
  it("asks for a look first, then only after the log changed, and once per change however many writes", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-growth-"))
    const file = path.join(dir, "job.stdout.log")
    fs.writeFileSync(file, "")
    const log = new LogGrowth(file)
    try {
      expect(log.mayHaveGrown()).toBe(true) // never looked at
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(log.mayHaveGrown()).toBe(false) // quiet: nothing to look at
      for (let i = 0; i < 100; i++) fs.appendFileSync(file, `line ${i}\n`)
      expect(await eventually(() => log.mayHaveGrown())).toBe(true)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(log.mayHaveGrown()).toBe(false) // the 100 writes were one change, already looked at
      fs.appendFileSync(file, "after the look\n")
      expect(await eventually(() => log.mayHaveGrown())).toBe(true)
    } finally {
      log.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("asks for a look every time when the log cannot be watched", () => {
    const log = new LogGrowth(path.join(os.tmpdir(), "planter-growth-missing", "nothing.log"))
    expect([log.mayHaveGrown(), log.mayHaveGrown(), log.mayHaveGrown()]).toEqual([true, true, true])
    log.close()
  })
})
