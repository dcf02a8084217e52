/**
 * `planter logs` beyond plain reads: byte-exact transfer of a non-UTF-8 log
 * (through the handed-over descriptor into a file, as `> file` does, and
 * through LogsRead chunks), `--json` carrying any bytes, `--tail`, `--all`,
 * `--timestamps`, `--since`, `-f` ending with the job's exit code, and the
 * daemon's refusal to hand a descriptor to anyone but the caller.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { PlanterClientShape } from "../../src/rpc/client.js"
import { make } from "../../src/rpc/client.js"
import type { TestDaemon } from "../support/daemon.js"
import { makeTempDir, planterBin, startDaemon, stopAllDaemons, waitForJobEnd } from "../support/daemon.js"

const TIMEOUT = 60_000

let daemon: TestDaemon
let cell: any

beforeAll(async () => {
  daemon = await startDaemon()
  cell = await daemon.json(["create", "--name", "logflags"])
})

afterAll(stopAllDaemons)

const withClient = <A, E>(f: (client: PlanterClientShape) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(make({ socketPath: daemon.socketPath }), f)))

/** Runs `sh -c script` and waits until it has exited. */
const runToEnd = async (script: string) => {
  const job = await daemon.json(["run", cell.name, "--", "sh", "-c", script])
  return waitForJobEnd<any>(daemon, job.id)
}

const logFile = (jobId: string, stream = "stdout") => path.join(daemon.stateDir, "logs", `${jobId}.${stream}.log`)
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** `planter logs …args > file`: stdout is a regular file, as a shell redirection makes it. */
const logsToFile = (args: ReadonlyArray<string>, file: string, env: NodeJS.ProcessEnv = {}) =>
  new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const out = fs.openSync(file, "w")
    const child = spawn(process.execPath, [planterBin, "--socket", daemon.socketPath, "logs", ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", out, "pipe"]
    })
    fs.closeSync(out)
    let stderr = ""
    child.stderr!.on("data", (data) => (stderr += data))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`planter logs ${args.join(" ")} did not finish\n${stderr}`))
    }, 30_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stderr })
    })
  })

/** A job that writes `bytes` (every byte value, so nothing is valid UTF-8) to stdout, from a file in its cell. */
const binaryJob = async (bytes: Buffer) => {
  const name = `blob-${randomBytes(4).toString("hex")}`
  fs.writeFileSync(path.join(cell.dir, name), bytes)
  return runToEnd(`cat ${name}`)
}

describe("planter logs: bytes", () => {
  // 3 MiB + a bit: every byte value, not valid UTF-8, more than one block of every copy loop.
  const blob = Buffer.concat([
    randomBytes(3 * 1024 * 1024),
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.from([0xff, 0xfe, 0x0a])
  ])

  it("`> file` copies a non-UTF-8 log byte for byte, through the descriptor and through LogsRead chunks", async () => {
    const job = await binaryJob(blob)
    expect(sha256(fs.readFileSync(logFile(job.id)))).toBe(sha256(blob))
    const dir = makeTempDir("planter-logs-out-")
    for (const env of [{}, { PLANTER_LOGS_VIA_RPC: "1" }]) {
      const out = path.join(dir, "out.bin")
      const result = await logsToFile([job.id], out, env)
      expect(result).toMatchObject({ code: 0, stderr: "" })
      expect(sha256(fs.readFileSync(out))).toBe(sha256(blob))
    }
    // From an offset, through a pipe (no kernel file copy): the same bytes from there.
    const viaPipe = await new Promise<Buffer>((resolve) => {
      const child = spawn(process.execPath, [
        planterBin,
        "--socket",
        daemon.socketPath,
        "logs",
        job.id,
        "--offset",
        "1000"
      ], { stdio: ["ignore", "pipe", "inherit"] })
      const parts: Array<Buffer> = []
      child.stdout.on("data", (data) => parts.push(data))
      child.on("close", () => resolve(Buffer.concat(parts)))
    })
    expect(sha256(viaPipe)).toBe(sha256(blob.subarray(1000)))
  }, TIMEOUT)

  it("--json carries non-UTF-8 bytes losslessly as base64, and UTF-8 as text, saying which", async () => {
    const small = Buffer.from([0x68, 0x69, 0xff, 0x00, 0xc3, 0x28, 0x0a])
    const job = await binaryJob(small)
    const doc = await daemon.json(["logs", job.id])
    expect(doc).toMatchObject({ encoding: "base64", complete: true, next_offset: small.length })
    expect(Buffer.from(doc.data, "base64").equals(small)).toBe(true)

    const text = await runToEnd("printf 'héllo\\n'")
    expect(await daemon.json(["logs", text.id])).toMatchObject({ encoding: "utf8", data: "héllo\n" })
  }, TIMEOUT)
})

describe("planter logs: lines", () => {
  it("--tail N prints the last N lines (a last line without newline counts), 0 prints nothing", async () => {
    const job = await runToEnd("for i in 1 2 3 4 5; do echo line $i; done; printf 'no newline'")
    for (const env of [{}, { PLANTER_LOGS_VIA_RPC: "1" }]) {
      expect(await daemon.cli(["logs", job.id, "--tail", "2"], { env })).toMatchObject({
        code: 0,
        stdout: "line 5\nno newline"
      })
      expect(await daemon.cli(["logs", job.id, "--tail", "100"], { env })).toMatchObject({
        code: 0,
        stdout: "line 1\nline 2\nline 3\nline 4\nline 5\nno newline"
      })
      expect(await daemon.cli(["logs", job.id, "--tail", "0"], { env })).toMatchObject({ code: 0, stdout: "" })
    }
    const bad = await daemon.cli(["logs", job.id, "--tail", "-1"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("--tail -1")
  }, TIMEOUT)

  it(
    "--all interleaves stdout and stderr in the order the daemon saw them arrive; --tail applies to each",
    async () => {
      // A second between writes: far more than the 250 ms sampling, so each write is seen in its own sample.
      const job = await runToEnd("echo out-1; sleep 1; echo err-1 >&2; sleep 1; echo out-2; sleep 1; echo err-2 >&2")
      expect(await daemon.cli(["logs", job.id, "--all"])).toMatchObject({
        code: 0,
        stdout: "out-1\nerr-1\nout-2\nerr-2\n"
      })
      expect(await daemon.cli(["logs", job.id, "--all", "--tail", "1"])).toMatchObject({
        code: 0,
        stdout: "out-2\nerr-2\n"
      })
      const doc = await daemon.json(["logs", job.id, "--all"])
      expect(doc.lines.map((line: any) => [line.stream, line.data])).toEqual([
        ["stdout", "out-1\n"],
        ["stderr", "err-1\n"],
        ["stdout", "out-2\n"],
        ["stderr", "err-2\n"]
      ])
      const both = await daemon.cli(["logs", job.id, "--all", "--stderr"])
      expect(both.code).toBe(2)
    },
    TIMEOUT
  )

  it("--timestamps prefixes each line with when the daemon saw it, within the job's life and in order", async () => {
    const job = await runToEnd("echo a; sleep 0.6; echo b; sleep 0.6; echo c")
    const result = await daemon.cli(["logs", job.id, "--timestamps"])
    expect(result.code).toBe(0)
    const lines = result.stdout.trimEnd().split("\n")
    expect(lines.map((line) => line.split(" ")[1])).toEqual(["a", "b", "c"])
    const times = lines.map((line) => Date.parse(line.split(" ")[0]!))
    for (const time of times) {
      expect(time).toBeGreaterThanOrEqual(job.started_at_ms)
      expect(time).toBeLessThanOrEqual(job.finished_at_ms + 1000)
    }
    expect([...times].sort((x, y) => x - y)).toEqual(times)
    expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(1000)
  }, TIMEOUT)

  it("--since TIME leaves out lines seen before it; a duration counts back from now", async () => {
    const job = await runToEnd("echo early; sleep 1.5; echo late")
    const doc = await daemon.json(["logs", job.id, "--timestamps"])
    const [early, late] = doc.lines
    expect([early.data, late.data]).toEqual(["early\n", "late\n"])
    const between = new Date(early.at_ms + 1).toISOString()
    expect(await daemon.cli(["logs", job.id, "--since", between])).toMatchObject({ code: 0, stdout: "late\n" })
    expect(await daemon.cli(["logs", job.id, "--since", "1h"])).toMatchObject({ code: 0, stdout: "early\nlate\n" })
    const bad = await daemon.cli(["logs", job.id, "--since", "yesterday"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("--since yesterday")
  }, TIMEOUT)
})

describe("planter logs -f", () => {
  it("ends with the job's exit code, and 128+N for a job a signal N killed", async () => {
    const failing = await daemon.json(["run", cell.name, "--", "sh", "-c", "echo working; sleep 0.5; exit 3"])
    expect(await daemon.cli(["logs", failing.id, "-f"])).toMatchObject({ code: 3, stdout: "working\n" })
    const killed = await daemon.json(["run", cell.name, "--", "sh", "-c", "echo bye; kill -KILL $$"])
    expect(await daemon.cli(["logs", killed.id, "-f"])).toMatchObject({ code: 137, stdout: "bye\n" })
    const ok = await daemon.json(["run", cell.name, "--", "sh", "-c", "sleep 0.3; echo fine"])
    expect(await daemon.cli(["logs", ok.id, "-f", "--all"])).toMatchObject({ code: 0, stdout: "fine\n" })
    // --json -f: the same exit code, and the job's in the document.
    const doc = await daemon.cli(["--json", "logs", failing.id, "-f"])
    expect(doc.code).toBe(3)
    expect(JSON.parse(doc.stdout)).toMatchObject({ exit_code: 3, complete: true, data: "working\n" })
    // Without -f the exit code is the CLI's own: the read worked.
    expect((await daemon.cli(["logs", failing.id])).code).toBe(0)
  }, TIMEOUT)
})

describe("LogsOpen", () => {
  it("sends the descriptor only to a socket the calling process itself listens on", async () => {
    const job = await runToEnd("echo private")
    // Another process listens on the name the caller gives: the daemon must refuse and send nothing.
    const name = `planter-fd-${randomBytes(16).toString("hex")}`
    const other = spawn(process.execPath, [
      "-e",
      `
      const net = require("net")
      const server = net.createServer((c) => { c.on("data", (d) => console.log("got " + d.length)) })
      server.listen({ path: "\\0${name}" }, () => console.log("listening"))
    `
    ], { stdio: ["ignore", "pipe", "inherit"] })
    let output = ""
    await new Promise<void>((resolve) =>
      other.stdout!.on("data", (data) => (output += data, output.includes("listening") && resolve()))
    )
    try {
      const error = await withClient((client) =>
        Effect.flip(
          client.LogsOpen({ job_id: job.id, stream: "stdout", reply_to: name, token: randomBytes(16).toString("hex") })
        )
      )
      expect(error._tag).toBe("InvalidRequest")
      expect(error.message).toContain(`pid ${other.pid}`)
      expect(error.message).toContain("nothing was sent")
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(output).not.toContain("got")
    } finally {
      other.kill("SIGKILL")
    }
    // A name that is not one of ours is refused before anything is tried.
    const bad = await withClient((client) =>
      Effect.flip(client.LogsOpen({ job_id: job.id, stream: "stdout", reply_to: "/tmp/x", token: "00".repeat(16) }))
    )
    expect(bad._tag).toBe("InvalidRequest")
    expect(bad.message).toContain("reply_to")
  }, TIMEOUT)
})
