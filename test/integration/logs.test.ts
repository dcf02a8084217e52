/**
 * Job logs as a user reads them: through `planter logs` (offsets, stderr,
 * following a job that is still writing) and through the typed client's
 * LogsRead (chunks, eof/complete, refused requests).
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { PlanterClientShape } from "../../src/rpc/client.js"
import { make, MAX_LOG_CHUNK_BYTES } from "../../src/rpc/client.js"
import type { TestDaemon } from "../support/daemon.js"
import { planterBin, startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"

const TIMEOUT = 60_000

let daemon: TestDaemon
let cell: any

beforeAll(async () => {
  daemon = await startDaemon()
  cell = await daemon.json(["create", "--name", "logs"])
})

afterAll(stopAllDaemons)

/** Runs `f` with a client connected to the test daemon; the connection closes with it. */
const withClient = <A, E>(f: (client: PlanterClientShape) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(make({ socketPath: daemon.socketPath }), f)))

/** Starts `sh -c script` in the test cell (cwd = the cell dir) through the client. */
const runScript = (script: string) =>
  withClient((client) =>
    client.JobRun({ cell_id: cell.id, argv: ["sh", "-c", script], env: {}, cwd: null, network: null })
  )

const awaitExited = async (jobId: string) => {
  await waitFor(
    `${jobId} to exit`,
    async () => (await withClient((client) => client.JobStatus({ job_id: jobId }))).status === "exited",
    20_000
  )
}

const read = (
  jobId: string,
  request: { offset: number; max_bytes?: number; follow?: boolean; wait_ms?: number; stream?: "stdout" | "stderr" }
) =>
  withClient((client) =>
    client.LogsRead({
      job_id: jobId,
      stream: request.stream ?? "stdout",
      offset: request.offset,
      max_bytes: request.max_bytes ?? 1024 * 1024,
      follow: request.follow ?? false,
      wait_ms: request.wait_ms ?? 0
    })
  )

const readError = (jobId: string, request: { offset: number; max_bytes: number }) =>
  withClient((client) =>
    Effect.flip(
      client.LogsRead({
        job_id: jobId,
        stream: "stdout",
        offset: request.offset,
        max_bytes: request.max_bytes,
        follow: false,
        wait_ms: 0
      })
    )
  )

const text = (data: Uint8Array) => Buffer.from(data).toString("utf8")

/** A job that writes `first`, waits for the file `go` in its cell dir, writes `second`, then waits for `end`. */
const GATED_SCRIPT =
  "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second; while [ ! -e end ]; do sleep 0.05; done"
const gate = (name: string) => fs.writeFileSync(path.join(cell.dir, name), "")
const resetGates = () => ["go", "end"].forEach((name) => fs.rmSync(path.join(cell.dir, name), { force: true }))

describe("planter logs", () => {
  it("--offset N prints exactly the bytes from N", async () => {
    const job = await runScript("printf '0123456789abcdef\\n'")
    await awaitExited(job.id)

    const whole = await daemon.cli(["logs", job.id])
    expect(whole).toMatchObject({ code: 0, stdout: "0123456789abcdef\n" })
    const tail = await daemon.cli(["logs", job.id, "--offset", "10"])
    expect(tail).toMatchObject({ code: 0, stdout: "abcdef\n" })

    const doc = await daemon.json(["logs", job.id, "--offset", "10"])
    expect(doc).toMatchObject({ job_id: job.id, stream: "stdout", offset: 10, next_offset: 17, data: "abcdef\n" })
  }, TIMEOUT)

  it("--stderr reads stderr, and stdout is the default", async () => {
    const job = await runScript("echo to-out; echo to-err >&2")
    await awaitExited(job.id)
    expect((await daemon.cli(["logs", job.id])).stdout).toBe("to-out\n")
    expect((await daemon.cli(["logs", job.id, "--stderr"])).stdout).toBe("to-err\n")
  }, TIMEOUT)

  it("a follower sees what the job writes after it started, and exits 0 when the job ends", async () => {
    resetGates()
    const job = await runScript(GATED_SCRIPT)
    const follower = spawn(process.execPath, [planterBin, "--socket", daemon.socketPath, "logs", job.id, "-f"], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    try {
      let stdout = ""
      follower.stdout.on("data", (data) => (stdout += data))
      const exited = new Promise<number | null>((resolve) => follower.once("close", (code) => resolve(code)))

      // The follower is reading: it printed what was there when it started.
      await waitFor("the follower to print `first`", () => stdout === "first\n", 20_000)
      gate("go")
      await waitFor("the follower to print `second`", () => stdout === "first\nsecond\n", 20_000)
      expect(follower.exitCode).toBe(null)

      gate("end")
      expect(await exited).toBe(0)
      expect(stdout).toBe("first\nsecond\n")
    } finally {
      if (follower.exitCode === null) follower.kill("SIGKILL")
    }
  }, TIMEOUT)
})

describe("LogsRead through the typed client", () => {
  it("walks a log in small chunks with increasing offsets", async () => {
    const job = await runScript("seq 1 30")
    await awaitExited(job.id)
    const expected = Array.from({ length: 30 }, (_, i) => `${i + 1}\n`).join("")

    const chunks = []
    let offset = 0
    for (;;) {
      const chunk = await read(job.id, { offset, max_bytes: 7 })
      chunks.push(chunk)
      expect(chunk.data.length).toBeGreaterThan(0)
      expect(chunk.data.length).toBeLessThanOrEqual(7)
      expect(chunk.offset).toBe(offset + chunk.data.length)
      offset = chunk.offset
      if (chunk.complete) break
      expect(chunk.eof).toBe(false)
      expect(chunks.length).toBeLessThan(100)
    }
    expect(chunks.map((chunk) => text(chunk.data)).join("")).toBe(expected)
    expect(offset).toBe(expected.length)
    expect(chunks.at(-1)).toMatchObject({ eof: true, complete: true })

    // Reading at the end of a finished log: nothing, and nothing more to come.
    const end = await read(job.id, { offset })
    expect(end).toMatchObject({ offset, eof: true, complete: true })
    expect(end.data.length).toBe(0)
  }, TIMEOUT)

  it("says eof but not complete while the job runs, and complete once it ended", async () => {
    resetGates()
    const job = await runScript(GATED_SCRIPT)
    try {
      let first = await read(job.id, { offset: 0 })
      // The job may not have written yet: follow until `first` is there.
      while (first.offset < 6) first = await read(job.id, { offset: 0, follow: true, wait_ms: 5_000 })
      expect(text(first.data)).toBe("first\n")
      expect(first).toMatchObject({ offset: 6, eof: true, complete: false })

      // A follow at the end waits for the next bytes.
      const waiting = read(job.id, { offset: 6, follow: true, wait_ms: 30_000 })
      gate("go")
      const second = await waiting
      expect(text(second.data)).toBe("second\n")
      expect(second).toMatchObject({ offset: 13, eof: true, complete: false })
    } finally {
      gate("go")
      gate("end")
    }
    await awaitExited(job.id)
    const last = await read(job.id, { offset: 13 })
    expect(last).toMatchObject({ offset: 13, eof: true, complete: true })
  }, TIMEOUT)

  it("refuses max_bytes above MAX_LOG_CHUNK_BYTES and accepts exactly that", async () => {
    const job = await runScript("echo small")
    await awaitExited(job.id)
    expect(await readError(job.id, { offset: 0, max_bytes: MAX_LOG_CHUNK_BYTES + 1 })).toMatchObject({
      _tag: "InvalidRequest",
      code: "invalid_request"
    })
    expect(await readError(job.id, { offset: 0, max_bytes: 0 })).toMatchObject({ code: "invalid_request" })
    const chunk = await read(job.id, { offset: 0, max_bytes: MAX_LOG_CHUNK_BYTES })
    expect(text(chunk.data)).toBe("small\n")
  }, TIMEOUT)

  it("refuses an offset past the end of a finished job's log", async () => {
    const job = await runScript("echo small")
    await awaitExited(job.id)
    const error = await readError(job.id, { offset: 7, max_bytes: 1024 })
    expect(error).toMatchObject({ _tag: "InvalidRequest", code: "invalid_request" })
    expect(error.message).toContain("past the end")
  }, TIMEOUT)

  it("a follow on a finished job answers at once with complete", async () => {
    const job = await runScript("echo done")
    await awaitExited(job.id)
    // The longest wait the protocol allows: answering only after it would fail the timeout below.
    const chunk = await withClient((client) =>
      client.LogsRead({ job_id: job.id, stream: "stdout", offset: 5, max_bytes: 1024, follow: true, wait_ms: 60_000 })
        .pipe(
          Effect.timeoutFail({
            duration: "20 seconds",
            onTimeout: () => new Error("the follow waited on a finished job")
          })
        )
    )
    expect(chunk).toMatchObject({ offset: 5, eof: true, complete: true })
    expect(chunk.data.length).toBe(0)
  }, TIMEOUT)
})
