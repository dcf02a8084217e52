import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { kernelThreads, layer as ProcessProbeLive } from "../../src/layers/ProcessProbeLive.js"
import { JOB_MARKER_ENV, ProcessProbe } from "../../src/services/ProcessProbe.js"

/** A real process with `env` (and PATH), killed when the test ends. */
const sleeper = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn("sleep", ["30"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } })),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )

describe.skipIf(process.platform !== "linux")("ProcessProbe on /proc", () => {
  it.scoped("markedBy finds exactly the processes whose environment holds the marker, with their stat entry", () =>
    Effect.gen(function*() {
      const probe = yield* ProcessProbe
      const marker = `job-probe-test-${process.pid}-${Date.now()}`
      const marked = yield* sleeper({ [JOB_MARKER_ENV]: marker })
      // A marker that only starts like ours (another job's id) is not ours.
      yield* sleeper({ [JOB_MARKER_ENV]: `${marker}0` })
      const found = yield* probe.markedBy(marker)
      expect(found.map((entry) => entry.pid)).toEqual([marked.pid])
      expect(found[0]).toEqual(yield* probe.entry(marked.pid!))
      expect(yield* probe.markedBy(marker.slice(0, -1))).toEqual([])
    }).pipe(Effect.provide(ProcessProbeLive)))

  it.scoped("markedBy reads an environment larger than its read buffer to the end", () =>
    Effect.gen(function*() {
      const probe = yield* ProcessProbe
      const marker = `job-probe-big-${process.pid}-${Date.now()}`
      // 200 KiB of variables before the marker: past the 64 KiB read buffer.
      const padding = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`PAD_${i}`, "x".repeat(4096)]))
      const marked = yield* sleeper({ ...padding, [JOB_MARKER_ENV]: marker })
      const found = yield* probe.markedBy(marker)
      expect(found.map((entry) => entry.pid)).toEqual([marked.pid])
    }).pipe(Effect.provide(ProcessProbeLive)))

  it.scoped("searches asked at once share one /proc pass, and each gets exactly its own job's processes", () =>
    Effect.gen(function*() {
      const probe = yield* ProcessProbe
      const markers = Array.from({ length: 4 }, (_, i) => `job-probe-batch-${process.pid}-${Date.now()}-${i}`)
      const marked = yield* Effect.forEach(markers, (marker) => sleeper({ [JOB_MARKER_ENV]: marker }))
      const second = yield* sleeper({ OTHER: "x", [JOB_MARKER_ENV]: markers[1]! })
      const found = yield* Effect.forEach(
        [...markers, markers[1]!, `${markers[0]}-none`],
        (marker) => probe.markedBy(marker),
        { concurrency: "unbounded" }
      )
      expect(found.map((entries) => entries.map((entry) => entry.pid).sort())).toEqual([
        [marked[0]!.pid],
        [marked[1]!.pid, second.pid].sort(),
        [marked[2]!.pid],
        [marked[3]!.pid],
        [marked[1]!.pid, second.pid].sort(),
        []
      ])
    }).pipe(Effect.provide(ProcessProbeLive)))

  it("the marker scan skips only the kernel's own threads (PF_KTHREAD), never a process of ours", () => {
    const skipped = kernelThreads()
    expect(skipped.has(String(process.pid))).toBe(false)
    for (const pid of skipped) {
      let stat: string
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1")
      } catch {
        continue // exited since
      }
      const flags = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[6])
      expect(flags & 0x00200000, `pid ${pid}: ${stat.slice(0, 40)}`).not.toBe(0)
    }
  })

  it.scoped("entry reads a process's stat line: its group, parent and start time; undefined once it is gone", () =>
    Effect.gen(function*() {
      const probe = yield* ProcessProbe
      const child = yield* sleeper({})
      const entry = yield* probe.entry(child.pid!)
      expect(entry).toMatchObject({ pid: child.pid, ppid: process.pid, zombie: false })
      expect(entry!.startTime).toMatch(/^\d+$/)
      expect(yield* probe.entry(2 ** 22 + 1)).toBeUndefined()
    }).pipe(Effect.provide(ProcessProbeLive)))
})
