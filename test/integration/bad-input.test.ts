import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { PlanterClientShape } from "../../src/rpc/client.js"
import { make, MAX_FOLLOW_WAIT_MS, MAX_LOG_CHUNK_BYTES } from "../../src/rpc/client.js"
import { clientSerialization } from "../../src/rpc/Serialization.js"
import { pidAlive, planterBin, startDaemon, stopAllDaemons, type TestDaemon, waitFor } from "../support/daemon.js"

/**
 * Bad input of every kind — malformed ids, paths that leave a cell, bad
 * flags, oversized or garbled frames, clients that vanish mid-request, a
 * flood of clients — gets a specific error or a closed connection, never
 * a crash, and never changes what the daemon already recorded.
 *
 * One daemon serves the whole file on purpose: the last test checks that
 * the records made before all of this abuse are exactly as they were.
 */

interface ErrorDoc {
  readonly error: { readonly code: string; readonly message: string; readonly detail: string | null }
}

let daemon: TestDaemon
let demo: { id: string; name: string; dir: string }
let baselineJob: { id: string }
let jobsBefore: Array<{ id: string }>
let cellsBefore: Array<{ id: string }>

/** Other suites may share the machine's two cores: a CLI call gets a minute, not the default 20 s. */
const CLI_TIMEOUT_MS = 60_000

/** Runs `planter --json ARGS`, expects success and answers the parsed document. */
const json = async <A = any>(args: ReadonlyArray<string>): Promise<A> => {
  const result = await daemon.cli(["--json", ...args], { timeoutMs: CLI_TIMEOUT_MS })
  expect(result.code, `planter ${args.join(" ")}: ${result.stdout}${result.stderr}`).toBe(0)
  return JSON.parse(result.stdout) as A
}

/** Runs `planter --json ARGS`, expects the daemon-error exit code and answers the error document. */
const expectError = async (args: ReadonlyArray<string>, code: string) => {
  const result = await daemon.cli(["--json", ...args], { timeoutMs: CLI_TIMEOUT_MS })
  const what = `planter ${args.join(" ").slice(0, 120)}`
  // A request the daemon refuses as malformed is bad usage (2); any other refusal is 1.
  expect(result.code, `${what}: ${result.stdout}${result.stderr}`).toBe(
    code === "invalid_request" || code === "limit_invalid" ? 2 : 1
  )
  const doc = JSON.parse(result.stdout) as ErrorDoc
  expect(doc.error.code, `${what}: ${doc.error.message}`).toBe(code)
  return doc.error.message
}

/** Runs `f` with a fresh typed client, as a script importing `planter/client` would. */
const withClient = <A, E>(f: (client: PlanterClientShape) => Effect.Effect<A, E>) =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(make({ socketPath: daemon.socketPath }), f)))

/** The RPCs that take a payload. */
type PayloadRpc = "CellCreate" | "CellRemove" | "JobRun" | "JobStatus" | "JobList" | "JobKill" | "LogsRead"

interface WireError {
  readonly _tag: string
  readonly code?: string
  readonly message: string
}

/**
 * Sends `payload` as `tag` through the typed client, cast past its types as
 * an untyped script could: the client checks no payload, so what comes back
 * is the daemon's own verdict.
 */
const sendUnchecked = (client: PlanterClientShape, tag: PayloadRpc, payload: unknown) =>
  (client[tag] as unknown as (payload: unknown) => Effect.Effect<unknown, WireError>)(payload)

/** Like `sendUnchecked`, expecting a refusal; answers the error. */
const refusal = (client: PlanterClientShape, tag: PayloadRpc, payload: unknown) =>
  Effect.flip(sendUnchecked(client, tag, payload))

const jobCount = async () => (await json<Array<unknown>>(["job", "ls", "--all"])).length
const cellCount = async () => (await json<Array<unknown>>(["cell", "ls"])).length

/** Runs `tasks` a few at a time: enough overlap to exercise concurrency without starving the CLI processes. */
const inBatches = async (tasks: ReadonlyArray<() => Promise<void>>, size = 4) => {
  for (let i = 0; i < tasks.length; i += size) await Promise.all(tasks.slice(i, i + size).map((task) => task()))
}

/** The daemon answers `planter health`: the check every abuse case ends with. */
const expectHealthy = async () => {
  expect(pidAlive(daemon.pid), `planterd died:\n${daemon.output()}`).toBe(true)
  const health = await json<{ ok: boolean; pid: number }>(["health"])
  expect(health).toMatchObject({ ok: true, pid: daemon.pid })
}

const openFds = () => fs.readdirSync(`/proc/${daemon.pid}/fd`).length

const rssBytes = () => {
  const status = fs.readFileSync(`/proc/${daemon.pid}/status`, "utf8")
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
}

interface RawOutcome {
  /** The daemon closed (or reset) the connection. */
  readonly closed: boolean
  readonly received: Buffer
}

/**
 * Writes `chunks` to a raw connection on the daemon's socket (respecting
 * backpressure, stopping if the daemon hangs up), then waits up to
 * `settleMs` for the daemon to answer or close.
 */
const rawExchange = (chunks: Iterable<Uint8Array>, settleMs: number) =>
  new Promise<RawOutcome>((resolve, reject) => {
    const socket = net.createConnection({ path: daemon.socketPath })
    let received = Buffer.alloc(0)
    let closed = false
    let connected = false
    let timer: NodeJS.Timeout | undefined
    socket.on("data", (data) => (received = Buffer.concat([received, data])))
    // After connecting, EPIPE/ECONNRESET are how a hang-up shows while we still write.
    socket.on("error", (error) => (connected ? undefined : reject(error)))
    socket.on("close", () => {
      if (!connected) return
      closed = true
      clearTimeout(timer)
      resolve({ closed, received })
    })
    socket.once("connect", () => {
      connected = true
      const iterator = chunks[Symbol.iterator]()
      const pump = () => {
        for (;;) {
          if (closed) return
          const next = iterator.next()
          if (next.done) break
          if (!socket.write(next.value)) return void socket.once("drain", pump)
        }
        timer = setTimeout(() => {
          socket.destroy()
          resolve({ closed: false, received })
        }, settleMs)
      }
      pump()
    })
  })

/** Encodes as the real client does (plain msgpack maps), one fresh encoder per connection. */
const encode = (value: unknown) => {
  const bytes = clientSerialization.unsafeMake().encode(value)
  return typeof bytes === "string" ? Buffer.from(bytes) : bytes!
}

/** Decodes what the daemon answered on a raw connection. */
const decodeAll = (bytes: Buffer): ReadonlyArray<any> => {
  try {
    return clientSerialization.unsafeMake().decode(bytes)
  } catch {
    return []
  }
}

/** A reproducible byte soup (no Math.random: a failure must replay). */
const garbage = (length: number, seed: number) => {
  const bytes = Buffer.alloc(length)
  let state = seed
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    bytes[i] = state >> 16
  }
  return bytes
}

describe("bad input", { timeout: 180_000 }, () => {
  beforeAll(async () => {
    daemon = await startDaemon()
    demo = await json(["create", "--name", "demo"])
    await json(["create", "--name", "keep", "--env", "KEEP=1", "--network", "deny"])
    fs.mkdirSync(path.join(demo.dir, "sub"))
    // A path inside the cell that leads out of it.
    fs.symlinkSync("/etc", path.join(demo.dir, "escape"))
    const baseline = await daemon.cli([
      "--json",
      "run",
      "demo",
      "--wait",
      "--",
      "sh",
      "-c",
      "echo baseline; echo oops >&2; exit 3"
    ], {
      timeoutMs: CLI_TIMEOUT_MS
    })
    expect(baseline.code, baseline.stderr).toBe(3)
    baselineJob = JSON.parse(baseline.stdout)
    jobsBefore = await json(["job", "ls", "--all"])
    cellsBefore = await json(["cell", "ls"])
    expect(jobsBefore).toHaveLength(1)
    expect(cellsBefore).toHaveLength(2)
  }, 180_000)

  afterAll(stopAllDaemons)

  it("refuses an empty argv: usage error from the CLI, invalid_request from the RPC", async () => {
    const plain = await daemon.cli(["run", "demo", "--"], { timeoutMs: CLI_TIMEOUT_MS })
    expect(plain.code).toBe(2)
    expect(plain.stderr).toMatch(/nothing to run/)
    const asJson = await daemon.cli(["--json", "run", "demo", "--"], { timeoutMs: CLI_TIMEOUT_MS })
    expect(asJson.code).toBe(2)
    expect((JSON.parse(asJson.stdout) as ErrorDoc).error).toMatchObject({
      code: "usage",
      message: expect.stringMatching(/nothing to run/)
    })

    // A script bypasses the CLI's check: the daemon must refuse it itself.
    const error = await withClient((client) =>
      refusal(client, "JobRun", { cell_id: "demo", argv: [], env: {}, cwd: null, network: null })
    )
    expect(error).toMatchObject({
      _tag: "InvalidRequest",
      code: "invalid_request",
      message: expect.stringMatching(/argv: nothing to run/)
    })
    // And an argv whose program is the empty string is no better.
    const empty = await withClient((client) =>
      Effect.flip(client.JobRun({ cell_id: "demo", argv: [""], env: {}, cwd: null, network: null }))
    )
    expect(empty).toMatchObject({
      _tag: "InvalidRequest",
      code: "invalid_request",
      message: expect.stringMatching(/argv\[0\]/)
    })
    expect(await jobCount()).toBe(jobsBefore.length)
  })

  it("refuses every invalid field sent straight to the daemon with invalid_request naming it, and creates nothing", async () => {
    const jobs = await jobCount()
    const cells = await cellCount()
    const cell = { name: "never-made", env: {}, read_paths: [], network: "allow" }
    const run = { cell_id: "demo", argv: ["true"], env: {}, cwd: null, network: null }
    const read = { job_id: baselineJob.id, stream: "stdout", offset: 0, max_bytes: 1024, follow: false, wait_ms: 0 }
    const nameRule = "an environment variable name is letters, digits and underscores, not starting with a digit"
    // Each of these was silently dropped from the env before: the job ran without it.
    const badEnvs: Array<[Record<string, string>, string]> = [
      [{ "BAD-NAME": "x" }, `env["BAD-NAME"]: ${nameRule}`],
      [{ "1X": "x" }, `env["1X"]: ${nameRule}`],
      [{ "ÉTÉ": "x" }, `env["ÉTÉ"]: ${nameRule}`],
      [{ "A\u0000B": "x" }, `env["A\\u0000B"]: ${nameRule}`],
      [{ OK: "a\u0000b" }, "env[\"OK\"]: must not contain null bytes"]
    ]
    const wholeBytes = "expected a whole number of bytes, 0 or more"
    const cases: Array<[PayloadRpc, unknown, string]> = [
      ...badEnvs.flatMap(([env, message]): Array<[PayloadRpc, unknown, string]> => [
        ["CellCreate", { ...cell, env: { KEEP: "1", ...env } }, message],
        ["JobRun", { ...run, env: { KEEP: "1", ...env } }, message]
      ]),
      ["LogsRead", { ...read, stream: "bogus" }, "stream: expected \"stdout\" or \"stderr\", got \"bogus\""],
      ["LogsRead", { ...read, offset: -1 }, `offset: ${wholeBytes}, got -1`],
      ["LogsRead", { ...read, offset: 2.5 }, `offset: ${wholeBytes}, got 2.5`],
      ["LogsRead", { ...read, offset: Number.NaN }, `offset: ${wholeBytes}, got NaN`],
      [
        "LogsRead",
        { ...read, max_bytes: 0 },
        `max_bytes: expected a whole number of bytes from 1 to ${MAX_LOG_CHUNK_BYTES}, got 0`
      ],
      [
        "LogsRead",
        { ...read, max_bytes: MAX_LOG_CHUNK_BYTES + 1 },
        `max_bytes: expected a whole number of bytes from 1 to ${MAX_LOG_CHUNK_BYTES}`
      ],
      [
        "LogsRead",
        { ...read, follow: true, wait_ms: -1 },
        `wait_ms: expected a whole number of milliseconds from 0 to ${MAX_FOLLOW_WAIT_MS}, got -1`
      ],
      ["LogsRead", { ...read, job_id: 7 }, "job_id: expected a job id (job-…) or name, got 7"],
      ["JobStatus", { job_id: 7 }, "job_id: expected a job id (job-…) or name, got 7"],
      ["JobKill", { job_id: ["job-x"], force: false }, "job_id: expected a job id (job-…) or name, got an array of 1"],
      ["JobKill", { job_id: baselineJob.id, force: "yes" }, "force: expected true or false, got \"yes\""],
      ["JobRun", { ...run, argv: [] }, "argv: nothing to run"],
      ["JobRun", { ...run, argv: ["echo", 5] }, "argv[1]: expected a string, got 5"],
      ["JobRun", { ...run, cwd: "sub\u0000" }, "cwd: must not contain null bytes"],
      ["JobRun", { ...run, network: "maybe" }, "network: expected \"allow\", \"deny\" or null"],
      ["JobRun", { ...run, cell_id: 7 }, "cell_id: expected a cell id (cell-…) or name, got 7"],
      ["JobRun", { ...run, sudo: true }, "sudo: unknown field"],
      ["CellCreate", { ...cell, network: "maybe" }, "network: expected \"allow\" or \"deny\", got \"maybe\""],
      ["CellCreate", { ...cell, read_paths: ["/tmp\u0000"] }, "read_paths[0]: must not contain null bytes"],
      ["CellCreate", { ...cell, name: 7 }, "name: expected a cell name, got 7"],
      ["CellCreate", "demo", "expected an object with the fields name, env, read_paths, network, limits, got \"demo\""],
      ["CellRemove", { cell_id: "keep" }, "force: missing"],
      ["JobList", { cell_id: 7 }, "cell_id: expected a cell id (cell-…) or name, or null"]
    ]
    await withClient((client) =>
      Effect.gen(function*() {
        for (const [tag, payload, message] of cases) {
          const error = yield* refusal(client, tag, payload)
          const what = `${tag} ${message}`
          expect(error, what).toMatchObject({ _tag: "InvalidRequest", code: "invalid_request" })
          expect(error.message, what).toContain(`invalid request: ${message}`)
        }
        // The same connection is still served.
        expect((yield* client.Health()).ok).toBe(true)
      })
    )
    await expectHealthy()
    expect(await jobCount()).toBe(jobs)
    expect(await cellCount()).toBe(cells)
  })

  it("answers malformed ids with invalid_request saying what an id looks like", async () => {
    const badIds = ["../x", "", "j".repeat(10_000), "job-../../etc", "cell-A B"]
    const jobCommands = [["job", "status"], ["job", "kill"], ["logs"]]
    await inBatches(badIds.flatMap((id) =>
      jobCommands.map((command) => async () => {
        const message = await expectError([...command, id], "invalid_request")
        expect(message).toMatch(/a job id looks like job-<letters and digits>/)
        // The message quotes the id, but never all 10 000 characters of it.
        expect(message.length).toBeLessThan(400)
      })
    ))
    await inBatches(badIds.map((id) => async () => {
      const message = await expectError(["cell", "rm", id], "invalid_request")
      expect(message).toMatch(/cell id .*cell-/)
      expect(message.length).toBeLessThan(400)
    }))
    expect(await cellCount()).toBe(cellsBefore.length)
  })

  it("answers unknown but well-formed ids with not_found", async () => {
    for (const command of [["job", "status"], ["job", "kill"], ["logs"]]) {
      expect(await expectError([...command, "job-zzzz"], "not_found")).toMatch(/job-zzzz/)
    }
    expect(await expectError(["cell", "rm", "cell-zzzz"], "not_found")).toMatch(/cell-zzzz/)
    expect(await expectError(["run", "cell-zzzz", "--", "true"], "not_found")).toMatch(/cell-zzzz/)
  })

  it("keeps a job's cwd inside its cell", async () => {
    for (const cwd of ["../..", "/etc", "escape"]) {
      const message = await expectError(["run", "demo", "--cwd", cwd, "--", "pwd"], "invalid_request")
      expect(message).toMatch(/outside the cell dir/)
    }
    expect(await expectError(["run", "demo", "--cwd", "missing", "--", "pwd"], "invalid_request")).toMatch(
      /does not exist/
    )

    const inside = await daemon.cli(["run", "demo", "--cwd", "sub", "--wait", "--", "pwd"], {
      timeoutMs: CLI_TIMEOUT_MS
    })
    expect(inside.code, inside.stderr).toBe(0)
    expect(inside.stdout.trim()).toBe(fs.realpathSync(path.join(demo.dir, "sub")))
  })

  it("refuses a command that is not on PATH, naming it, and records no job", async () => {
    const before = await jobCount()
    const message = await expectError(["run", "demo", "--", "planter-no-such-command", "arg"], "invalid_request")
    expect(message).toMatch(/planter-no-such-command/)
    expect(await jobCount()).toBe(before)
  })

  it("refuses arguments the OS cannot pass (a NUL byte) and a cell whose directory vanished, and stays up", async () => {
    const before = await jobCount()
    const nul = await withClient((client) =>
      Effect.flip(client.JobRun({ cell_id: "demo", argv: ["echo", "a\u0000b"], env: {}, cwd: null, network: null }))
    )
    expect(nul).toMatchObject({ code: "invalid_request" })
    expect(nul.message).toMatch(/null bytes/)

    const doomed = await json<{ dir: string }>(["create", "--name", "doomed"])
    fs.rmSync(doomed.dir, { recursive: true, force: true })
    expect(await expectError(["run", "doomed", "--", "true"], "invalid_request")).toMatch(/directory .* is gone/)
    expect(await jobCount()).toBe(before)
    expect((await json<{ name: string }>(["cell", "rm", "doomed"])).name).toBe("doomed")
    await expectHealthy()
  })

  it("refuses bad --env with a usage error", async () => {
    for (const env of ["NOEQUALS", "1X=y", "=y"]) {
      const result = await daemon.cli(["run", "demo", "--env", env, "--", "true"], { timeoutMs: CLI_TIMEOUT_MS })
      expect(result.code, result.stdout).toBe(2)
      expect(result.stderr).toMatch(/--env .*NAME=VALUE/)
    }
  })

  it("refuses bad cell names, duplicate names and --read paths that are relative or expose the state dir", async () => {
    for (const name of ["../x", "", "n".repeat(200), "a b", "cell-x"]) {
      expect(await expectError(["create", "--name", name], "invalid_request")).toMatch(/invalid cell name/)
    }
    expect(await expectError(["create", "--name", "demo"], "conflict")).toMatch(/already exists/)

    // The CLI resolves --read against its own cwd, so a relative path that does not exist there is refused…
    expect(await expectError(["create", "--name", "rel", "--read", "relative/path"], "invalid_request")).toMatch(
      /--read/
    )
    // …and a script sending a relative path is told to give an absolute one.
    const relative = await withClient((client) =>
      Effect.flip(client.CellCreate({ name: "rel", env: {}, read_paths: ["relative/path"], network: "allow" }))
    )
    expect(relative).toMatchObject({ code: "invalid_request", message: expect.stringMatching(/absolute/) })

    for (const exposed of [daemon.stateDir, path.join(daemon.stateDir, "logs"), path.dirname(daemon.stateDir)]) {
      expect(await expectError(["create", "--name", "peek", "--read", exposed], "invalid_request")).toMatch(
        /state dir or socket/
      )
    }
    expect(await cellCount()).toBe(cellsBefore.length)
  })

  it("refuses a negative log offset with a clear message", async () => {
    const result = await daemon.cli(["--json", "logs", baselineJob.id, "--offset", "-1"], { timeoutMs: CLI_TIMEOUT_MS })
    expect([1, 2]).toContain(result.code)
    expect((JSON.parse(result.stdout) as ErrorDoc).error.message).toMatch(/offset/)
  })

  it("closes a connection that sends an oversized frame, and keeps serving", async () => {
    const rssBefore = rssBytes()
    const mib = Buffer.alloc(1024 * 1024, 0x61)
    // bin32 and str32 headers that each declare ~2 GiB, then 20 MiB of their body.
    for (const header of [[0xc6, 0x7f, 0xff, 0xff, 0xff], [0xdb, 0x7f, 0xff, 0xff, 0xff]]) {
      const outcome = await rawExchange([Buffer.from(header), ...Array.from({ length: 20 }, () => mib)], 10_000)
      expect(outcome.closed).toBe(true)
      await expectHealthy()
    }
    // The real check is the hang-up above. This is only a coarse guard: @effect/rpc re-copies the
    // pending bytes on every read until the 8 MiB frame limit trips (~0.5 GiB of short-lived buffers
    // per connection), so RSS can jump by a few hundred MiB before the GC catches up.
    expect(rssBytes() - rssBefore).toBeLessThan(1024 * 1024 * 1024)
  })

  it("survives garbled bytes and well-formed values that are not requests", async () => {
    // A client connected before the garbage must be served after it.
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const client = yield* make({ socketPath: daemon.socketPath })
      const cases: Array<[string, Uint8Array]> = [
        ["random bytes", garbage(4096, 1)],
        ["more random bytes", garbage(65_536, 2)],
        ["a number", encode(42)],
        ["a string", encode("hello")],
        ["nil", encode(null)],
        ["an array", encode([1, 2, 3])],
        ["a bogus rpc tag", encode({ _tag: "Request", id: "1", tag: "Nope", payload: {}, headers: [] })],
        [
          "a bogus payload",
          encode({ _tag: "Request", id: "2", tag: "JobStatus", payload: { job_id: 5 }, headers: [] })
        ],
        [
          "a request id that is not a number",
          encode({ _tag: "Request", id: "nope", tag: "Health", payload: {}, headers: [] })
        ],
        ["an interrupt for no request", encode({ _tag: "Interrupt", requestId: "nope" })],
        ["bogus headers", encode({ _tag: "Request", id: "3", tag: "Health", payload: {}, headers: 5 })]
      ]
      for (const [what, bytes] of cases) {
        const outcome = yield* Effect.promise(() => rawExchange([bytes], 500))
        expect(pidAlive(daemon.pid), `planterd died after ${what}:\n${daemon.output()}`).toBe(true)
        if (what === "a bogus rpc tag") {
          // A decodable request for no RPC: the daemon answers it (with a defect: no RPC, no error schema) rather than hanging up.
          expect(decodeAll(outcome.received).length, what).toBeGreaterThan(0)
        }
        if (what === "a bogus payload") {
          // A payload that does not decode is the RPC's own invalid_request, naming the field, not a defect.
          expect(decodeAll(outcome.received), what).toContainEqual(expect.objectContaining({
            _tag: "Exit",
            requestId: "2",
            exit: expect.objectContaining({
              _tag: "Failure",
              cause: expect.objectContaining({
                _tag: "Fail",
                error: expect.objectContaining({
                  _tag: "InvalidRequest",
                  message: expect.stringMatching(/^invalid request: job_id: /)
                })
              })
            })
          }))
        }
        const health = yield* client.Health()
        expect(health.ok, what).toBe(true)
      }
    })))
    await expectHealthy()
  })

  it("keeps serving when followers disconnect mid-follow, without leaking descriptors", async () => {
    const long = await json<{ id: string }>(["run", "demo", "--", "sh", "-c", "echo started; exec sleep 300"])

    /** Starts `planter logs -f` on the long job and resolves once it has printed the job's first line. */
    const follower = () => {
      const child = spawn(process.execPath, [planterBin, "--socket", daemon.socketPath, "logs", "-f", long.id], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      child.stdout.on("data", (data) => (stdout += data))
      const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)))
      const connected = waitFor(
        "the follower to print the job's output",
        () => stdout.includes("started"),
        CLI_TIMEOUT_MS
      )
      return { child, exited, connected, stdout: () => stdout }
    }

    const disconnectOne = async () => {
      const f = follower()
      await f.connected
      f.child.kill("SIGKILL")
      await f.exited
    }

    // Node and the runtime open some descriptors lazily on the first connections: measure after one.
    await disconnectOne()
    const fdsBefore = openFds()
    for (let round = 0; round < 4; round++) await Promise.all(Array.from({ length: 5 }, disconnectOne))
    await expectHealthy()
    // 20 leaked connections would be 20+ descriptors; allow a few for watchers and timers.
    await waitFor(`open descriptors to settle near ${fdsBefore}`, () => openFds() <= fdsBefore + 5, 15_000)

    const last = follower()
    await last.connected
    const killed = await json<{ termination_reason: string }>(["job", "kill", long.id])
    expect(killed.termination_reason).toBe("terminated_by_user")
    // A follower that stayed connected sees the end of the job and exits with the job's code: SIGTERM, 128+15.
    expect(await last.exited).toBe(143)
    expect(last.stdout()).toBe("started\n")
  })

  it("serves a flood of concurrent clients", async () => {
    const typed = Effect.runPromise(
      Effect.all(
        Array.from(
          { length: 100 },
          () =>
            Effect.scoped(
              Effect.flatMap(make({ socketPath: daemon.socketPath }), (client) =>
                Effect.all([client.Health(), client.CellList({})]))
            )
        ),
        { concurrency: "unbounded" }
      )
    )
    const runs = Promise.all(
      Array.from({ length: 20 }, () => daemon.cli(["run", "demo", "--", "true"], { timeoutMs: 150_000 }))
    )
    const [answers, started] = await Promise.all([typed, runs])
    expect(answers).toHaveLength(100)
    for (const [health, cells] of answers) {
      expect(health.ok).toBe(true)
      expect(cells.cells.map((cell) => cell.id)).toEqual(expect.arrayContaining(cellsBefore.map((cell) => cell.id)))
    }
    for (const run of started) {
      expect(run.code, run.stderr).toBe(0)
      expect(run.stdout.trim()).toMatch(/^job-[a-z0-9]+$/)
    }
    const ids = new Set(started.map((run) => run.stdout.trim()))
    expect(ids.size).toBe(20)
    await expectHealthy()
  })

  it("leaves every earlier cell and job record exactly as it was", async () => {
    await expectHealthy()
    const jobsAfter = await json<Array<{ id: string }>>(["job", "ls", "--all"])
    const cellsAfter = await json<Array<{ id: string }>>(["cell", "ls"])
    for (const job of jobsBefore) expect(jobsAfter.find((after) => after.id === job.id)).toEqual(job)
    expect(cellsAfter).toEqual(cellsBefore)
    const logs = await json<{ data: string; complete: boolean }>(["logs", baselineJob.id])
    expect(logs).toMatchObject({ data: "baseline\n", complete: true })
  })
})
