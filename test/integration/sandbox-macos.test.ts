/**
 * The sandbox-exec backend against the real thing, where it exists: macOS.
 * The profile's rendering is tested on every platform (test/unit/SeatbeltProfile.test.ts);
 * this file checks that the rendered profile really confines a job.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { makeTempDir, startDaemon, stopAllDaemons } from "../support/daemon.js"

const SLOW = 120_000

describe.runIf(process.platform === "darwin")("enforced sandbox (sandbox-exec, macOS)", () => {
  let daemon: TestDaemon
  let home: string

  beforeAll(async () => {
    home = makeTempDir("planter-home-")
    fs.writeFileSync(path.join(home, "secret.txt"), "secret\n")
    daemon = await startDaemon({ args: ["--sandbox-mode", "enforced"], env: { HOME: home } })
    const health = await daemon.json(["health"])
    expect(health.sandbox).toMatchObject({ backend: "sandbox-exec", available: true })
  }, SLOW)

  afterAll(async () => {
    await stopAllDaemons()
    fs.rmSync(home, { recursive: true, force: true })
  })

  const sh = (cell: string, script: string, flags: ReadonlyArray<string> = []) =>
    daemon.cli(["run", cell, "--wait", ...flags, "--", "sh", "-c", script])

  it("allows writes in the cell and TMPDIR, and blocks them elsewhere", async () => {
    const cell = await daemon.json(["create", "--name", "mac-writes"])
    const inside = await sh(cell.name, "echo x > ./x && echo y > \"$TMPDIR/y\"")
    expect(inside.code).toBe(0)
    expect(fs.readFileSync(path.join(cell.dir, "x"), "utf8")).toBe("x\n")
    for (
      const target of [
        path.join(daemon.stateDir, "planter-x"),
        path.join(home, "planter-x"),
        path.join(os.tmpdir(), `planter-x-${process.pid}`)
      ]
    ) {
      const outside = await sh(cell.name, `echo x > '${target}'`)
      expect(outside.code).not.toBe(0)
      expect(fs.existsSync(target)).toBe(false)
    }
  }, SLOW)

  it("cannot read the database or $HOME, and records the backend", async () => {
    const cell = await daemon.json(["create", "--name", "mac-reads"])
    const db = await sh(cell.name, `cat '${path.join(daemon.stateDir, "planter.db")}'`)
    expect(db.code).not.toBe(0)
    const secret = await sh(cell.name, `cat '${path.join(home, "secret.txt")}'`)
    expect(secret.code).not.toBe(0)
    expect(secret.stdout).not.toContain("secret")
    const job = await daemon.json(["job", "status", secret.stderr.split("\n")[0]!.trim()])
    expect(job.sandbox).toMatchObject({ mode: "enforced", backend: "sandbox-exec", fallback_reason: null })
  }, SLOW)

  it("denies the network with --network deny and allows it by default", async () => {
    const server = net.createServer((socket) => socket.end("pong\n"))
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as net.AddressInfo).port
    try {
      const cell = await daemon.json(["create", "--name", "mac-net"])
      const connect = `nc -w 2 127.0.0.1 ${port} < /dev/null`
      expect((await sh(cell.name, connect)).stdout).toContain("pong")
      expect((await sh(cell.name, connect, ["--network", "deny"])).stdout).not.toContain("pong")
    } finally {
      server.close()
    }
  }, SLOW)
})
