/**
 * The sandbox against the real thing: a daemon in `enforced` mode runs jobs
 * under bubblewrap, and the tests look from the host at what a job could
 * and could not touch. Without bubblewrap the suite is skipped loudly, or
 * fails when PLANTER_REQUIRE_SANDBOX=1 (CI), so a missing sandbox cannot
 * pass as green.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as net from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { makeTempDir, pidAlive, startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"
import {
  bwrapEnv,
  createCell,
  DENIED,
  jobIdOf,
  nodeReadArgs,
  processTree,
  sandboxDescribe,
  sh
} from "../support/sandbox.js"

const describeSandbox = sandboxDescribe()

// better-sqlite3 ships no types here; the tests need only a read-only query.
interface ReadonlyDb {
  prepare(sql: string): { all(...params: Array<unknown>): Array<Record<string, unknown>> }
  close(): void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new(
  file: string,
  options: { readonly: boolean }
) => ReadonlyDb

/** The events journal's rows of `kind`, read straight from the daemon's database. */
const events = (daemon: TestDaemon, kind: string) => {
  const db = new Database(path.join(daemon.stateDir, "planter.db"), { readonly: true })
  try {
    return db.prepare("SELECT kind, cell_id, job_id, detail_json FROM events WHERE kind = ?").all(kind)
  } finally {
    db.close()
  }
}

/** Each case drives a dozen CLI round trips through real daemons: generous, for loaded machines. */
const SLOW = 120_000

/** Temp dirs this file made besides the daemons' own; removed when done. */
const temps: Array<string> = []
const tempDir = (prefix: string) => {
  const dir = makeTempDir(prefix)
  temps.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

describeSandbox("enforced sandbox (bubblewrap)", { timeout: SLOW }, () => {
  let daemon: TestDaemon
  let home: string
  const secret = `secret-${process.pid}-${Date.now()}`

  beforeAll(async () => {
    home = tempDir("planter-home-")
    fs.writeFileSync(path.join(home, "secret.txt"), secret)
    // The socket lives outside the state dir, so hiding it is checked on its own.
    const socketPath = path.join(tempDir("planter-sock-"), "planterd.sock")
    daemon = await startDaemon({
      args: ["--sandbox-mode", "enforced"],
      socketPath,
      // bwrap found on PATH is left for the daemon to find the same way.
      env: { HOME: home, ...bwrapEnv() }
    })
    const health = await daemon.json(["health"])
    // A bwrap that cannot start here (user namespaces off) must say so, not fail each case obscurely.
    if (!health.sandbox.available) {
      throw new Error(`bubblewrap is installed but unusable: ${health.sandbox.unavailable_reason}`)
    }
    expect(health.sandbox).toMatchObject({ mode: "enforced", backend: "bubblewrap", available: true })
  }, SLOW)

  afterAll(async () => {
    await stopAllDaemons()
  }, SLOW)

  it("blocks writes to /etc, the state dir and $HOME, and allows them in the cell and TMPDIR", async () => {
    const cell = await createCell(daemon, "writes")
    const etcFile = `/etc/planter-x-${process.pid}`

    const etc = await sh(daemon, cell.name, `echo x > ${etcFile}`)
    expect(etc.code).not.toBe(0)
    expect(etc.stderr).toMatch(DENIED)
    expect(fs.existsSync(etcFile)).toBe(false)

    const state = await sh(daemon, cell.name, `echo x > ${daemon.stateDir}/planter-x`)
    expect(state.code).not.toBe(0)
    expect(fs.existsSync(path.join(daemon.stateDir, "planter-x"))).toBe(false)

    const inHome = await sh(daemon, cell.name, `echo x > ${home}/planter-x`)
    expect(inHome.code).not.toBe(0)
    expect(fs.existsSync(path.join(home, "planter-x"))).toBe(false)

    const inCell = await sh(daemon, cell.name, "echo x > ./x")
    expect(inCell.code).toBe(0)
    expect(fs.readFileSync(path.join(cell.dir, "x"), "utf8")).toBe("x\n")

    const inTmp = await sh(daemon, cell.name, `echo t > "$TMPDIR/t" && cat "$TMPDIR/t"`)
    expect(inTmp.code).toBe(0)
    expect(inTmp.stdout).toBe("t\n")
  })

  it("hides the database, other cells, $HOME and the daemon's socket", async () => {
    const cellA = await createCell(daemon, "reader-a")
    const cellB = await createCell(daemon, "reader-b")
    fs.writeFileSync(path.join(cellB.dir, "note.txt"), "b's note")
    fs.writeFileSync(path.join(cellA.dir, "present"), "")

    const db = await sh(daemon, cellA.name, `cat ${daemon.stateDir}/planter.db`)
    expect(fs.existsSync(path.join(daemon.stateDir, "planter.db"))).toBe(true)
    expect(db.code).not.toBe(0)
    expect(db.stdout).toBe("")

    const other = await sh(daemon, cellA.name, `cat ${cellB.dir}/note.txt`)
    expect(other.code).not.toBe(0)
    expect(other.stdout).not.toContain("b's note")
    // The same file is readable from its own cell: the denial above is the sandbox, not a typo.
    const own = await sh(daemon, cellB.name, `cat ${cellB.dir}/note.txt`)
    expect(own).toMatchObject({ code: 0, stdout: "b's note" })

    const secretRead = await sh(daemon, cellA.name, `cat ${home}/secret.txt`)
    expect(secretRead.code).not.toBe(0)
    expect(secretRead.stdout).not.toContain(secret)

    expect(fs.existsSync(daemon.socketPath)).toBe(true)
    const socket = await sh(daemon, cellA.name, `test -e ./present && ! test -e ${daemon.socketPath}`)
    expect(socket.code).toBe(0)
  })

  it("shows a path granted with --read, read-only", async () => {
    const granted = tempDir("planter-read-")
    fs.writeFileSync(path.join(granted, "data.txt"), "granted")
    const cellR = await createCell(daemon, "granted", ["--read", granted])
    const read = await sh(daemon, cellR.name, `cat ${granted}/data.txt`)
    expect(read).toMatchObject({ code: 0, stdout: "granted" })
    const write = await sh(daemon, cellR.name, `echo x > ${granted}/new.txt`)
    expect(write.code).not.toBe(0)
    expect(write.stderr).toMatch(DENIED)
    expect(fs.existsSync(path.join(granted, "new.txt"))).toBe(false)
    const append = await sh(daemon, cellR.name, `echo x >> ${granted}/data.txt`)
    expect(append.code).not.toBe(0)
    expect(fs.readFileSync(path.join(granted, "data.txt"), "utf8")).toBe("granted")
  })

  it("--network deny (cell or job) cannot reach a loopback server outside; the default can", async () => {
    let connections = 0
    const server = net.createServer((socket) => {
      connections++
      socket.end("pong")
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as net.AddressInfo).port
    try {
      // node runs inside the job; grant its install dir when the policy does not already show it.
      const nodeBin = fs.realpathSync(process.execPath)
      const readNode = nodeReadArgs()
      const connect = `${nodeBin} -e '
        const s = require("net").connect(${port}, "127.0.0.1")
        s.on("data", (d) => { console.log("got " + d); process.exit(0) })
        s.on("error", (e) => { console.error(e.message); process.exit(3) })
        setTimeout(() => { console.error("timeout"); process.exit(4) }, 5000)'`

      const open = await createCell(daemon, "net-open", readNode)
      const closed = await createCell(daemon, "net-closed", [...readNode, "--network", "deny"])

      const allowed = await sh(daemon, open.name, connect)
      expect(allowed).toMatchObject({ code: 0, stdout: "got pong\n" })
      expect(connections).toBe(1)

      const cellDenied = await sh(daemon, closed.name, connect)
      expect(cellDenied.code).not.toBe(0)
      expect(cellDenied.stdout).not.toContain("pong")

      const jobDenied = await sh(daemon, open.name, connect, ["--network", "deny"])
      expect(jobDenied.code).not.toBe(0)
      expect(jobDenied.stdout).not.toContain("pong")
      const record = await daemon.json(["job", "status", jobIdOf(jobDenied.stderr)])
      expect(record.sandbox.network).toBe("deny")

      // Neither denied job's connection arrived anywhere.
      expect(connections).toBe(1)
    } finally {
      server.close()
    }
  })

  it("records the mode and backend in the job", async () => {
    const cell = await createCell(daemon, "record")
    const result = await sh(daemon, cell.name, "true")
    expect(result.code).toBe(0)
    const job = await daemon.json(["job", "status", jobIdOf(result.stderr)])
    expect(job.sandbox).toEqual({ mode: "enforced", backend: "bubblewrap", network: "allow", fallback_reason: null })
  })

  it("a kill leaves no process of the sandbox behind", async () => {
    const cell = await createCell(daemon, "kill")
    const job = await daemon.json(["run", cell.name, "--", "sh", "-c", "sleep 300 & sleep 300 & wait"])
    await waitFor("both sleeps to start", () => processTree(job.pid).filter((p) => p.comm === "sleep").length === 2)
    const tree = processTree(job.pid)
    // The leader and the namespace's init are bwrap: they must go as well as the job's own processes.
    expect(tree.filter((p) => p.comm === "bwrap").length).toBeGreaterThanOrEqual(2)
    expect(tree.some((p) => p.comm === "sh")).toBe(true)

    const killed = await daemon.json(["job", "kill", job.id])
    expect(killed).toMatchObject({ status: "exited", termination_reason: "terminated_by_user" })
    expect(tree.filter((p) => pidAlive(p.pid))).toEqual([])
  })
})

// These make bubblewrap unavailable on purpose, so they run whether it is installed or not.
describe("without bubblewrap", { timeout: SLOW }, () => {
  afterAll(async () => {
    await stopAllDaemons()
  }, SLOW)

  it("enforced refuses the job, says how to install bubblewrap, and journals the attempt", async () => {
    const daemon = await startDaemon({
      args: ["--sandbox-mode", "enforced"],
      env: { PLANTER_BWRAP: "/nonexistent/bwrap" }
    })
    const cell = await createCell(daemon, "refused")

    const result = await daemon.cli(["--json", "run", cell.name, "--", "sh", "-c", "echo should-not-run"])
    expect(result.code).toBe(1)
    const error = JSON.parse(result.stdout).error
    expect(error.code).toBe("sandbox_unavailable")
    expect(error.message).toMatch(/install bubblewrap|apt-get install bubblewrap/)

    expect(await daemon.json(["job", "ls"])).toEqual([])
    const failed = events(daemon, "job_start_failed")
    expect(failed).toHaveLength(1)
    expect(failed[0]!.cell_id).toBe(cell.id)

    const health = await daemon.json(["health"])
    expect(health.sandbox).toMatchObject({ mode: "enforced", available: false })
    expect(health.sandbox.unavailable_reason).toContain("/nonexistent/bwrap")
  })

  it("permissive runs the job unsandboxed and says why", async () => {
    const daemon = await startDaemon({
      args: ["--sandbox-mode", "permissive"],
      env: { PLANTER_BWRAP: "/nonexistent/bwrap" }
    })
    const cell = await createCell(daemon, "fallback")

    const result = await sh(daemon, cell.name, "echo fell-back")
    expect(result).toMatchObject({ code: 0, stdout: "fell-back\n" })
    const jobId = jobIdOf(result.stderr)
    const job = await daemon.json(["job", "status", jobId])
    expect(job.sandbox).toMatchObject({ mode: "permissive", backend: "none" })
    expect(job.sandbox.fallback_reason).toMatch(/PLANTER_BWRAP|bubblewrap/)

    const fallbacks = events(daemon, "job_sandbox_fallback")
    expect(fallbacks.map((row) => row.job_id)).toEqual([jobId])
    expect(daemon.output()).toContain("unsandboxed")
  })

  it("disabled runs the job with no sandbox and no fallback", async () => {
    const daemon = await startDaemon({
      args: ["--sandbox-mode", "disabled"],
      env: { PLANTER_BWRAP: "/nonexistent/bwrap" }
    })
    const cell = await createCell(daemon, "plain")

    const result = await sh(daemon, cell.name, "echo plain")
    expect(result).toMatchObject({ code: 0, stdout: "plain\n" })
    const job = await daemon.json(["job", "status", jobIdOf(result.stderr)])
    expect(job.sandbox).toMatchObject({ mode: "disabled", backend: "none", fallback_reason: null })
    expect(events(daemon, "job_sandbox_fallback")).toEqual([])
  })
})
