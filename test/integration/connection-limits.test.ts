/**
 * One client cannot grow or stall the daemon: a peer that pipelines log
 * reads and never reads the answers is held to a few answers' worth of
 * memory (released when it goes), and a frame header claiming billions of
 * values is refused at once; `health` keeps answering other clients
 * meanwhile. No timing is asserted beyond generous "it answered" bounds.
 */
import { Packr } from "msgpackr"
import * as fs from "node:fs"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { sleep, startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"

const TIMEOUT = 120_000
const MiB = 1024 * 1024

let daemon: TestDaemon
let jobId: string

const rssBytes = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024
const cpuMs = (pid: number) => {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
}

const packr = new Packr({ useRecords: true })
const logsRead = (id: number) =>
  packr.pack({
    _tag: "Request",
    id: String(id),
    tag: "LogsRead",
    payload: { job_id: jobId, stream: "stdout", offset: 0, max_bytes: 4 * MiB, follow: false, wait_ms: 0 },
    headers: []
  })

const connect = (socketPath: string) =>
  new Promise<net.Socket>((resolve, reject) => {
    const socket = net.createConnection({ path: socketPath }, () => resolve(socket))
    socket.once("error", reject)
  })

/** `planter health` from a separate process: the daemon still answers others. */
const healthAnswers = async () => {
  const result = await daemon.cli(["--json", "health"], { timeoutMs: 20_000 })
  return result.code === 0 && JSON.parse(result.stdout).ok === true
}

/** The daemon's RSS once it settles (the lowest of a few samples). */
const settledRss = async () => {
  let lowest = Infinity
  for (let i = 0; i < 5; i++) {
    lowest = Math.min(lowest, rssBytes(daemon.pid))
    await sleep(200)
  }
  return lowest
}

beforeAll(async () => {
  daemon = await startDaemon()
  expect((await daemon.cli(["create", "--name", "big"])).code).toBe(0)
  // 16 MiB of log: each read answers 4 MiB.
  const run = await daemon.json<{ id: string }>([
    "run",
    "big",
    "--wait",
    "--",
    "head",
    "-c",
    String(16 * MiB),
    "/dev/zero"
  ])
  jobId = run.id
  for (let i = 0; i < 3; i++) expect(await healthAnswers()).toBe(true)
}, TIMEOUT)

afterAll(stopAllDaemons)

describe("per-connection bounds", () => {
  it(
    "a peer that pipelines 4 MiB reads and never reads the answers grows the daemon by a few answers, released when it goes",
    async () => {
      const idle = await settledRss()
      const hog = await connect(daemon.socketPath)
      hog.pause() // Never read: the answers pile up in the kernel, then in the daemon.
      // 400 reads of 4 MiB: 1.6 GB of answers if the daemon kept them all.
      const burst = Buffer.concat(Array.from({ length: 400 }, (_, i) => logsRead(i + 1)))
      hog.write(burst)
      let peak = 0
      for (let i = 0; i < 10; i++) {
        await sleep(300)
        peak = Math.max(peak, rssBytes(daemon.pid))
        expect(await healthAnswers(), "health answers while a peer hogs its connection").toBe(true)
      }
      // 8 answers in flight (32 MiB) plus the write cap; far from the 1.6 GB asked for.
      expect(peak - idle, `RSS grew from ${idle} to ${peak}`).toBeLessThan(100 * MiB)

      hog.destroy()
      await waitFor(
        "the daemon's RSS to come back near idle",
        async () => (await settledRss()) - idle < 50 * MiB,
        30_000
      )
      expect(await healthAnswers()).toBe(true)
    },
    TIMEOUT
  )

  it(
    "a frame header declaring 4 billion values is refused at once: the connection closes before the body is sent",
    async () => {
      const cpuBefore = cpuMs(daemon.pid)
      const liar = await connect(daemon.socketPath)
      const closed = new Promise<void>((resolve) => liar.once("close", () => resolve()))
      liar.on("error", () => {}) // EPIPE once the daemon hangs up.
      liar.write(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff))
      let sent = 0
      const piece = Buffer.alloc(16 * 1024, 0xc0)
      let open = true
      void closed.then(() => (open = false))
      while (open && sent < 64 * MiB) {
        if (!liar.write(piece)) await new Promise((resolve) => setTimeout(resolve, 5))
        sent += piece.length
        if (sent % MiB === 0) await sleep(1)
      }
      await closed
      expect(sent, "bytes sent before the daemon closed the connection").toBeLessThan(64 * MiB)
      expect(await healthAnswers()).toBe(true)
      // Refused at the header: no megabytes gathered and re-parsed (generous: the old decoder took 30 s of CPU).
      expect(cpuMs(daemon.pid) - cpuBefore).toBeLessThan(5_000)
    },
    TIMEOUT
  )

  it("a legal but huge frame fed 16 KiB at a time is decoded once, not re-parsed on every piece", async () => {
    const cpuBefore = cpuMs(daemon.pid)
    const slow = await connect(daemon.socketPath)
    slow.on("error", () => {})
    // A 2.5 MiB argv for an unknown cell: decoded once, answered not_found.
    const frame = packr.pack({
      _tag: "Request",
      id: "1",
      tag: "JobRun",
      payload: {
        cell_id: "no-such-cell",
        argv: Array.from({ length: 270_000 }, (_, i) => `arg${i}`),
        env: {},
        cwd: null,
        network: null
      },
      headers: []
    })
    expect(frame.length).toBeGreaterThan(2 * MiB)
    const answered = new Promise<void>((resolve) => slow.once("data", () => resolve()))
    for (let at = 0; at < frame.length; at += 16 * 1024) {
      slow.write(frame.subarray(at, at + 16 * 1024))
      if ((at / (16 * 1024)) % 16 === 0) await sleep(1)
    }
    await answered
    slow.destroy()
    expect(await healthAnswers()).toBe(true)
    expect(cpuMs(daemon.pid) - cpuBefore).toBeLessThan(5_000)
  }, TIMEOUT)
})
