/**
 * An ended job's empty TMPDIR becomes the next job's (src/layers/TmpDirPool.ts): the next job still gets a
 * private, empty, 0700 TMPDIR named after itself; one a job left anything in is removed, never handed on; and no
 * spare outlives the daemon, whether it stops or crashes.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"

const TIMEOUT = 60_000

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
      const daemon = await startDaemon()
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
    const crashed = await startDaemon()
    const tmpRoot = path.join(crashed.stateDir, "tmp")
    await crashed.json(["create", "--name", "demo"])
    await crashed.json(["run", "demo", "--wait", "--", "true"])
    expect(fs.readdirSync(tmpRoot)).toHaveLength(1)
    await crashed.stop("SIGKILL")
    expect(fs.readdirSync(tmpRoot), "the spare after the crash").toHaveLength(1)

    const next = await startDaemon({ stateDir: crashed.stateDir })
    expect(fs.readdirSync(tmpRoot), "spares after the next start").toEqual([])
    const job = await next.json<EndedJob>(["run", "demo", "--wait", "--", "true"])
    expect(job.exit_code).toBe(0)
  }, TIMEOUT)
})
