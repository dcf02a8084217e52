import { describe, expect, it } from "@effect/vitest"
import { parseProcStat, parsePsLine } from "../../src/layers/ProcessProbeLive.js"
import type { ProcessEntry } from "../../src/services/ProcessProbe.js"
import type { JobTree } from "../../src/services/ProcessProbe.js"
import { indexSnapshot, isRunning, treeMembers, treeView } from "../../src/services/ProcessProbe.js"

const tree = (leaderPid: number, leaderStartTime: string): JobTree => ({ leaderPid, leaderStartTime, known: new Map() })

const entry = (pid: number, ppid: number, pgid: number, zombie = false): ProcessEntry => ({
  pid,
  ppid,
  pgid,
  zombie,
  startTime: String(pid * 10)
})

describe("parseProcStat", () => {
  it("reads pid, parent, group, state and start time even when the name holds spaces and parentheses", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3))
    fields[0] = "S" // state
    fields[1] = "77" // ppid
    fields[2] = "88" // pgrp
    fields[19] = "123456" // starttime
    const parsed = parseProcStat(`4242 (weird) name (x)) ${fields.join(" ")}`)
    expect(parsed).toMatchObject({ pid: 4242, ppid: 77, pgid: 88, zombie: false, startTime: "123456" })
  })

  it("counts a zombie as not running", () => {
    const fields = Array.from({ length: 50 }, () => "0")
    fields[0] = "Z"
    const parsed = parseProcStat(`9 (sh) ${fields.join(" ")}`)
    expect(parsed?.zombie).toBe(true)
    expect(isRunning(parsed, null)).toBe(false)
  })

  it("tells a reused pid from the job by its start time", () => {
    const live = entry(5, 1, 5)
    expect(isRunning(live, "50")).toBe(true)
    expect(isRunning(live, "51")).toBe(false)
    expect(isRunning(undefined, "50")).toBe(false)
  })
})

describe("parsePsLine", () => {
  it("reads the macOS ps columns", () => {
    expect(parsePsLine("  312   1   312 Ss   Tue Nov 25 14:02:11 2026")).toEqual({
      pid: 312,
      ppid: 1,
      pgid: 312,
      zombie: false,
      startTime: "Tue Nov 25 14:02:11 2026"
    })
    expect(parsePsLine("garbage")).toBeUndefined()
  })
})

describe("treeMembers", () => {
  it("finds the group, descendants that left it, and their children; skips zombies and strangers", () => {
    const snapshot = [
      entry(1, 0, 1),
      entry(100, 1, 100), // leader
      entry(101, 100, 100), // child in the group
      entry(102, 100, 102), // child that called setsid
      entry(103, 102, 102), // its child
      entry(104, 1, 100), // orphan still in the group
      entry(105, 100, 100, true), // zombie
      entry(200, 1, 200) // unrelated
    ]
    const members = treeMembers(snapshot, tree(100, "1000"))
    expect(members.map((m) => m.pid).sort()).toEqual([100, 101, 102, 103, 104])
  })

  it("remembers members across snapshots, so an escaped child orphaned later is still found", () => {
    const job = tree(100, "1000")
    treeMembers([entry(100, 1, 100), entry(102, 100, 102)], job)
    // The leader died: 102 was re-parented to init and is in its own group.
    const later = treeMembers([entry(1, 0, 1), entry(102, 1, 102)], job)
    expect(later.map((m) => m.pid)).toEqual([102])
  })

  it("forgets members that have gone, and finds the same tree from an indexed snapshot", () => {
    const job = tree(100, "1000")
    treeMembers([entry(100, 1, 100), entry(101, 100, 100), entry(102, 100, 102)], job)
    expect([...job.known.keys()].sort()).toEqual([100, 101, 102])
    const index = indexSnapshot([entry(1, 0, 1), entry(100, 1, 100), entry(102, 100, 102), entry(103, 102, 102)])
    expect(treeView(index, job).members.map((m) => m.pid).sort()).toEqual([100, 102, 103])
    expect([...job.known.keys()].sort()).toEqual([100, 102, 103])
  })

  it("never takes a reused pid for a member it knew", () => {
    const job = tree(100, "1000")
    treeMembers([entry(100, 1, 100), entry(102, 100, 102)], job)
    // 102 is gone and its pid now belongs to an unrelated process started later.
    const stranger = { pid: 102, ppid: 1, pgid: 102, zombie: false, startTime: "999999" }
    expect(treeMembers([entry(1, 0, 1), stranger], job)).toEqual([])
  })

  it("never takes a stranger that reused the leader's pid, nor its group, for the job", () => {
    // The leader exited; an unrelated process took pid 100 and leads group 100 with a child.
    const stranger = { pid: 100, ppid: 1, pgid: 100, zombie: false, startTime: "999999" }
    const strangersChild = { pid: 300, ppid: 100, pgid: 100, zombie: false, startTime: "999999" }
    const view = treeView([entry(1, 0, 1), stranger, strangersChild], tree(100, "1000"))
    expect(view.members).toEqual([])
    expect(view.groupIsJobs).toBe(false)
  })

  it("keeps the group of a leader that exited: its pid cannot be reused while the group lives", () => {
    const view = treeView([entry(1, 0, 1), entry(104, 1, 100)], tree(100, "1000"))
    expect(view.members.map((m) => m.pid)).toEqual([104])
    expect(view.groupIsJobs).toBe(true)
  })
})
