/**
 * A job is its whole process tree: `job kill`, a leader that exits on its
 * own, and a daemon shutdown all leave none of its processes behind, even
 * ones that ignore SIGTERM or left the job's process group.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { pidAlive, startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"

const TIMEOUT = 90_000
// Short, so the SIGKILL escalation for a process that ignores SIGTERM comes quickly.
const DAEMON_ARGS = ["--kill-grace-ms", "300"]

/** Every process this file saw (pid → kernel start time), so a failed test still leaves nothing running. */
const seen = new Map<number, string>()

afterAll(async () => {
  await stopAllDaemons()
  // Only the very process seen, never whatever reused its pid since.
  for (const [pid, startTime] of seen) {
    if (pidAlive(pid) && startTimeOf(pid) === startTime) process.kill(pid, "SIGKILL")
  }
})

const startTimeOf = (pid: number) => {
  try {
    return statFields(pid)[19]
  } catch {
    return undefined // Gone already.
  }
}

const remember = (pid: number) => {
  const startTime = startTimeOf(pid)
  if (startTime !== undefined) seen.set(pid, startTime)
}

/** The shell writes `$!` into the cell dir (the job's cwd); waits until the whole number is there. */
const readPid = async (dir: string, name: string) => {
  const file = path.join(dir, name)
  let pid = 0
  await waitFor(`${file}`, () => {
    const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
    if (!/^\d+\n$/.test(text)) return false
    pid = Number(text)
    return true
  }, 20_000)
  remember(pid)
  return pid
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, …]. */
const statFields = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
}
const processGroup = (pid: number) => Number(statFields(pid)[2])

const commandLine = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((arg) => arg.length > 0).join(" ")
  } catch {
    return ""
  }
}

/** True when `pid` ignores SIGTERM (bit 15 of SigIgn in /proc/<pid>/status). */
const ignoresSigterm = (pid: number) => {
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("SigIgn:"))!
  return (BigInt(`0x${line.split(/\s+/)[1]}`) & (1n << 14n)) !== 0n
}

const runJob = async (daemon: TestDaemon, cellName: string, script: string) => {
  const job = await daemon.json(["run", cellName, "--", "sh", "-c", script])
  remember(job.pid)
  return job
}

// A plain background child, one that ignores SIGTERM, and one in a session of its own.
const TREE_SCRIPT = [
  "sleep 300 & echo $! > child.pid",
  `(trap "" TERM; exec sleep 300) & echo $! > stubborn.pid`,
  "setsid sleep 300 & echo $! > escaped.pid",
  "wait"
].join("\n")

const startTree = async (daemon: TestDaemon, cellName: string) => {
  const cell = await daemon.json(["create", "--name", cellName])
  const job = await runJob(daemon, cellName, TREE_SCRIPT)
  const pids = {
    child: await readPid(cell.dir, "child.pid"),
    stubborn: await readPid(cell.dir, "stubborn.pid"),
    escaped: await readPid(cell.dir, "escaped.pid")
  }
  // `$!` is written before the child runs its trap or setsid: wait until each has become `sleep 300`.
  for (const pid of Object.values(pids)) {
    await waitFor(`${pid} to run sleep 300`, () => commandLine(pid) === "sleep 300", 20_000)
  }
  // The tree really is what the test claims, else a pass would prove nothing.
  for (const pid of [job.pid, ...Object.values(pids)]) expect(pidAlive(pid)).toBe(true)
  expect(processGroup(pids.child)).toBe(job.pid)
  expect(ignoresSigterm(pids.stubborn)).toBe(true)
  expect(processGroup(pids.escaped)).not.toBe(job.pid)
  return { cell, job, pids }
}

describe("kill tree", () => {
  it("job kill leaves no process of the tree alive, stubborn or escaped", async () => {
    const daemon = await startDaemon({ args: DAEMON_ARGS })
    const { job, pids } = await startTree(daemon, "tree")

    const killed = await daemon.json(["job", "kill", job.id])
    expect(killed).toMatchObject({ status: "exited", termination_reason: "terminated_by_user" })
    for (const pid of [job.pid, ...Object.values(pids)]) expect(pidAlive(pid), `pid ${pid}`).toBe(false)
  }, TIMEOUT)

  it("a leader that exits on its own takes its background child with it", async () => {
    const daemon = await startDaemon({ args: DAEMON_ARGS })
    const cell = await daemon.json(["create", "--name", "orphans"])
    const job = await runJob(daemon, "orphans", "sleep 300 & echo $! > orphan.pid; echo leader done")
    const orphan = await readPid(cell.dir, "orphan.pid")

    // logs -f returns once the job is over.
    const logs = await daemon.cli(["logs", job.id, "-f"])
    expect(logs.stdout).toBe("leader done\n")
    const finished = await daemon.json(["job", "status", job.id])
    expect(finished).toMatchObject({ status: "exited", exit_code: 0, termination_reason: "exited" })
    expect(pidAlive(orphan)).toBe(false)
  }, TIMEOUT)

  it("a leader that exits on its own also takes a child that escaped with setsid", async () => {
    const daemon = await startDaemon({ args: DAEMON_ARGS })
    const cell = await daemon.json(["create", "--name", "escapees"])
    // The leader lives on for a while after the escape, as a parent usually does.
    const job = await runJob(daemon, "escapees", "setsid sleep 300 & echo $! > escaped.pid; sleep 2; echo leader done")
    const escaped = await readPid(cell.dir, "escaped.pid")
    await waitFor("the escapee to be in a session of its own", () => statFields(escaped)[3] === String(escaped), 10_000)

    expect((await daemon.cli(["logs", job.id, "-f"])).stdout).toBe("leader done\n")
    expect(await daemon.json(["job", "status", job.id])).toMatchObject({
      status: "exited",
      termination_reason: "exited"
    })
    expect(pidAlive(escaped)).toBe(false)
  }, TIMEOUT)

  it("a daemon stopped with SIGTERM kills running trees and records daemon_shutdown", async () => {
    const daemon = await startDaemon({ args: DAEMON_ARGS })
    const { job, pids } = await startTree(daemon, "shutdown")

    expect(await daemon.stop("SIGTERM")).toBe(0)
    for (const pid of [job.pid, ...Object.values(pids)]) expect(pidAlive(pid), `pid ${pid}`).toBe(false)

    const restarted = await startDaemon({ stateDir: daemon.stateDir, args: DAEMON_ARGS })
    expect(await restarted.json(["job", "status", job.id])).toMatchObject({
      status: "exited",
      termination_reason: "daemon_shutdown"
    })
  }, TIMEOUT)
})
