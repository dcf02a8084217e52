/**
 * An ended job's empty TMPDIR becomes the next job's (src/layers/TmpDirPool.ts) when none of the job's processes
 * can have outlived it (bubblewrap's PID namespace): the next job still gets a private, empty, 0700 TMPDIR named
 * after itself; one a job left anything in is removed, never handed on; an unsandboxed job's is never handed on
 * (a leftover process could still write in it), new ones are made ahead for them instead; an id a failed start
 * journaled is never another job's; and no spare outlives the daemon, whether it stops or crashes.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { MAX_SPARE_TMPDIRS } from "../../src/layers/TmpDirPool.js"
import { startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"

const TIMEOUT = 60_000

/** What a TMPDIR made ahead for an unsandboxed job holds until its start: the job's empty log files. */
const SPARE_LOGS = [".planter-spare-stderr", ".planter-spare-stdout"]

/** Recycling needs a sandbox whose processes cannot outlive the job. */
const SANDBOXED = { args: ["--sandbox-mode", "enforced"] }

afterAll(async () => {
  await stopAllDaemons()
})

interface EndedJob {
  readonly id: string
  readonly exit_code: number | null
}

describe.skipIf(process.platform !== "linux")("recycled TMPDIRs", () => {
  it(
    "hands an ended job's empty TMPDIR to the next job, private and empty, and removes it when the daemon stops",
    async () => {
      const daemon = await startDaemon(SANDBOXED)
      const tmpRoot = path.join(daemon.stateDir, "tmp")
      const stdout = (id: string) => fs.readFileSync(path.join(daemon.stateDir, "logs", `${id}.stdout.log`), "utf8")
      await daemon.json(["create", "--name", "demo"])

      const first = await daemon.json<EndedJob>(["run", "demo", "--wait", "--", "sh", "-c", "echo \"$TMPDIR\""])
      expect(first.exit_code).toBe(0)
      expect(stdout(first.id).trim()).toBe(path.join(tmpRoot, first.id))
      expect(fs.existsSync(path.join(tmpRoot, first.id)), "the ended job's TMPDIR").toBe(false)
      const spares = fs.readdirSync(tmpRoot)
      expect(spares, "one spare: the first job's TMPDIR, renamed").toHaveLength(1)

      const script = "echo \"$TMPDIR\"; stat -c %a \"$TMPDIR\"; ls -A \"$TMPDIR\"; echo secret > \"$TMPDIR/left\""
      const second = await daemon.json<EndedJob>(["run", "demo", "--wait", "--", "sh", "-c", script])
      expect(second.exit_code).toBe(0)
      expect(second.id, "the next job took the spare").toBe(spares[0])
      // Its own TMPDIR (named after it), mode 700, empty when it started.
      expect(stdout(second.id).split("\n")).toEqual([path.join(tmpRoot, second.id), "700", ""])
      // It left a file there: removed (on the thread pool, after the end was answered), not recycled.
      await waitFor("the TMPDIR the job wrote in to be removed", () => fs.readdirSync(tmpRoot).length === 0)

      const third = await daemon.json<EndedJob>(["run", "demo", "--wait", "--", "sh", "-c", "ls -A \"$TMPDIR\""])
      expect(third.exit_code).toBe(0)
      expect(stdout(third.id), "what the next job found in its TMPDIR").toBe("")
      expect(fs.readdirSync(tmpRoot)).toHaveLength(1)

      await daemon.stop()
      expect(fs.readdirSync(tmpRoot), "spares once the daemon stopped").toEqual([])
    },
    TIMEOUT
  )

  it("a daemon that crashed leaves spares that the next one removes at start", async () => {
    const crashed = await startDaemon(SANDBOXED)
    const tmpRoot = path.join(crashed.stateDir, "tmp")
    await crashed.json(["create", "--name", "demo"])
    await crashed.json(["run", "demo", "--wait", "--", "true"])
    expect(fs.readdirSync(tmpRoot)).toHaveLength(1)
    await crashed.stop("SIGKILL")
    expect(fs.readdirSync(tmpRoot), "the spare after the crash").toHaveLength(1)

    const next = await startDaemon({ ...SANDBOXED, stateDir: crashed.stateDir })
    expect(fs.readdirSync(tmpRoot), "spares after the next start").toEqual([])
    const job = await next.json<EndedJob>(["run", "demo", "--wait", "--", "true"])
    expect(job.exit_code).toBe(0)
  }, TIMEOUT)

  it("never hands on an unsandboxed job's TMPDIR: a process it left behind could still write in it", async () => {
    const daemon = await startDaemon()
    const tmpRoot = path.join(daemon.stateDir, "tmp")
    await daemon.json(["create", "--name", "demo"])
    // A descendant that leaves the job's group and clears its marker outlives the job's kill, its cwd in the TMPDIR.
    const leaver = "cd \"$TMPDIR\"; env -u PLANTER_JOB_ID setsid sh -c 'sleep 1; echo leaked > left.txt' "
      + "</dev/null >/dev/null 2>&1 & sleep 0.2"
    const first = await daemon.json<EndedJob>(["run", "demo", "--wait", "--", "sh", "-c", leaver])
    expect(first.exit_code).toBe(0)
    const second = await daemon.json<EndedJob>([
      "run",
      "demo",
      "--wait",
      "--",
      "sh",
      "-c",
      "sleep 1.5; ls -A \"$TMPDIR\""
    ])
    expect(second.exit_code).toBe(0)
    expect(fs.readFileSync(path.join(daemon.stateDir, "logs", `${second.id}.stdout.log`), "utf8")).toBe("")
    await waitFor("the first job's TMPDIR to be removed", () => !fs.existsSync(path.join(tmpRoot, first.id)))
    // What is left are new TMPDIRs made ahead of the next starts (TmpDirPool.fill), never a job's: each holds only
    // the empty log files of the job that will take it, which its start moves to the logs dir.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    for (const spare of fs.readdirSync(tmpRoot)) {
      expect(fs.readdirSync(path.join(tmpRoot, spare)).sort(), `the spare ${spare}`).toEqual(SPARE_LOGS)
    }
  }, TIMEOUT)

  it(
    "makes unsandboxed jobs' TMPDIRs ahead of their starts: new, private, empty, and gone when the daemon stops",
    async () => {
      const daemon = await startDaemon()
      const tmpRoot = path.join(daemon.stateDir, "tmp")
      await daemon.json(["create", "--name", "demo"])
      expect(fs.readdirSync(tmpRoot), "before any job").toEqual([])
      const first = await daemon.json<EndedJob>(["run", "demo", "--wait", "--", "true"])
      expect(first.exit_code).toBe(0)
      await waitFor("the first job's TMPDIR to be removed", () => !fs.existsSync(path.join(tmpRoot, first.id)))
      await waitFor("spare TMPDIRs made while idle", () => fs.readdirSync(tmpRoot).length === MAX_SPARE_TMPDIRS)
      const spares = fs.readdirSync(tmpRoot)
      const script = "echo \"$TMPDIR\"; stat -c %a \"$TMPDIR\"; ls -A \"$TMPDIR\""
      const second = await daemon.json<EndedJob>(["run", "demo", "--wait", "--", "sh", "-c", script])
      expect(second.exit_code).toBe(0)
      expect(spares, "the next job took a TMPDIR made ahead").toContain(second.id)
      expect(fs.readFileSync(path.join(daemon.stateDir, "logs", `${second.id}.stdout.log`), "utf8").split("\n"))
        .toEqual([path.join(tmpRoot, second.id), "700", ""])
      const stderrLog = fs.statSync(path.join(daemon.stateDir, "logs", `${second.id}.stderr.log`))
      expect([stderrLog.size, stderrLog.mode & 0o7777], "the job's stderr log, made ahead").toEqual([0, 0o600])
      await daemon.stop()
      expect(fs.readdirSync(tmpRoot), "spares once the daemon stopped").toEqual([])
    },
    TIMEOUT
  )

  it(
    "a crashed daemon's TMPDIRs made ahead, log files and all, are removed by the next one, and leave no log",
    async () => {
      const crashed = await startDaemon()
      const tmpRoot = path.join(crashed.stateDir, "tmp")
      const logsDir = path.join(crashed.stateDir, "logs")
      await crashed.json(["create", "--name", "demo"])
      const job = await crashed.json<EndedJob>(["run", "demo", "--wait", "--", "true"])
      await waitFor("spare TMPDIRs made while idle", () => fs.readdirSync(tmpRoot).length === MAX_SPARE_TMPDIRS)
      await crashed.stop("SIGKILL")
      const logs = fs.readdirSync(logsDir).sort()
      expect(logs, "the logs dir holds the job's logs only").toEqual([`${job.id}.stderr.log`, `${job.id}.stdout.log`])

      const next = await startDaemon({ stateDir: crashed.stateDir })
      expect(fs.readdirSync(tmpRoot), "spares after the next start").toEqual([])
      expect(fs.readdirSync(logsDir).sort()).toEqual(logs)
      const after = await next.json<EndedJob>(["run", "demo", "--wait", "--", "true"])
      expect(after.exit_code).toBe(0)
    },
    TIMEOUT
  )

  it("never gives the id of a start that failed after it was journaled to another job", async () => {
    const daemon = await startDaemon(SANDBOXED)
    await daemon.json(["create", "--name", "demo"])
    await daemon.json(["run", "demo", "--wait", "--", "true"]) // leaves a spare
    const failed = await daemon.cli(["run", "demo", "--", "/nonexistent/prog"])
    expect(failed.code).not.toBe(0)
    const events: Array<{ kind: string; job_id: string | null }> = await daemon.json(["events", "--since", "1h"])
    const failedIds = events.filter((event) => event.kind === "job_start_failed").map((event) => event.job_id)
    expect(failedIds).toHaveLength(1)
    const next = await daemon.json<EndedJob>(["run", "demo", "--wait", "--", "true"])
    expect(next.exit_code).toBe(0)
    expect(next.id).not.toBe(failedIds[0])
  }, TIMEOUT)
})
