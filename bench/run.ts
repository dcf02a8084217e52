/**
 * Planter's benchmark: measures, in one run, the figures of DESIGN.md's
 * "Performance targets" that a single machine can measure quickly, each
 * beside its baseline from the same run, and says PASS or MISS.
 *
 *   npm run bench            a table on stdout (progress on stderr)
 *   npm run bench -- --json  the figures as one JSON document
 *   npm run bench -- --only legacy_import[,health,…]
 *                            only these groups: jobrun, bubblewrap, health,
 *                            follow, logsread, legacy_import, monitor,
 *                            joblist, starts, rss, conn_bounds, cli
 *
 * It starts its own daemons (dist/planterd.mjs) on temp state dirs and
 * sockets and stops them by pid when done, also on error or Ctrl-C.
 */
import { Effect, Exit, Scope } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { linuxSystemPaths, resolveExecutable } from "../src/layers/SandboxRunnerLive.js"
import { type Job, make, openLogFile, type PlanterClientShape } from "../src/rpc/client.js"
import { bubblewrapArgs, LAUNCHER_ENV } from "../src/services/BubblewrapArgs.js"
import { fsReadThroughput, startEcho, timeSpawn } from "./baselines.js"
import { type BenchDaemon, killAllDaemonsNow, makeTempDir, planterdBin, sleep, startDaemon } from "./daemon.js"
import { awaitJobEnd, runJob } from "./jobs.js"
import { timeNode, writePrototypeState } from "./legacy.js"
import { benchKillTree, benchLargeOutput } from "./lifecycle.js"
import { benchCli, benchConnectionBounds, benchJobList, benchRss, benchStarts, type Report } from "./scale.js"
import { gbps, median, ms, round, summarize, type Summary } from "./stats.js"

const asJson = process.argv.includes("--json")
/**
 * The `planter` bin as it ships (dist/planter, built beside the bench by `npm run bench`): a shell wrapper that
 * starts node from the CLI's startup snapshot, so it is run as a program, as a person runs `planter`.
 */
const planterBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "planter")
const GROUPS = [
  "jobrun",
  "bubblewrap",
  "health",
  "follow",
  "logsread",
  "legacy_import",
  "monitor",
  "joblist",
  "starts",
  "rss",
  "conn_bounds",
  "cli",
  "kill_tree",
  "large_output"
] as const
const onlyArg = process.argv.indexOf("--only")
const only = onlyArg < 0 ? undefined : new Set((process.argv[onlyArg + 1] ?? "").split(","))
for (const group of only ?? []) {
  if (!(GROUPS as ReadonlyArray<string>).includes(group)) {
    throw new Error(`--only ${group}: the groups are ${GROUPS.join(", ")}`)
  }
}
const selected = (group: typeof GROUPS[number]) => only === undefined || only.has(group)
const progress = (line: string) => process.stderr.write(`bench: ${line}\n`)

// Iteration counts: enough samples for a p99, small enough that the whole run
// stays well under three minutes on two cores.
const SPAWN_WARMUP = 20
const SPAWN_ITERATIONS = 200
/**
 * Health's warm-up: until both sides run optimized code. V8 optimizes a function once it has run
 * (3 + its bytecode length / 150) times 66 KB of its own bytecode, and not within 500 calls of its last
 * inline-cache change: a small function that runs once per call gets there after ~1 500–2 500 calls. With
 * 1 000 warm-up calls, the client optimized ~38 and the daemon ~37 functions inside the measured window
 * (~320 ms of compiler threads' CPU beside the two main threads on 2 cores), which made its p99 miss
 * (docs/benchmarks.md, "Health: the tail was V8 still optimizing"). That window is still measured, shown in
 * the row and below the table (`TIER_UP_WINDOW`), with no target.
 */
const HEALTH_WARMUP = 5000
const HEALTH_ITERATIONS = 2000
/** The window checked before 74b2161 (a 1 000-call warm-up), when V8 was still optimizing the call path here. */
const TIER_UP_WINDOW = { from: 1000, to: 3000 } as const
const LOG_BYTES = 256 * 1024 * 1024
const LOG_CHUNK = 1024 * 1024
const LOG_ROUNDS = 3
const FOLLOW_LINES = 250
const FOLLOW_WARMUP_LINES = 10
const FOLLOW_INTERVAL_MS = 20
const LEGACY_JOBS = 10_000
const LEGACY_ROUNDS = 3
const MONITOR_JOBS = 200
const MONITOR_WINDOW_MS = 10_000

/** The environment a job starts from in the daemon (JobSupervisorLive's base env), reused by the baselines. */
const jobEnv = (home: string, tmp: string) => ({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: home,
  TMPDIR: tmp,
  LANG: "C.UTF-8"
})

// ---------------------------------------------------------------------------
// Report model

type Result = "PASS" | "MISS" | "SKIP"

interface Check {
  readonly figure: string
  readonly measured: string
  readonly baseline: string
  readonly target: string
  readonly result: Result
}

interface Figure {
  readonly id: string
  readonly name: string
  readonly unit: string
  readonly measured: Record<string, number> | null
  readonly baseline: Record<string, number> | null
  readonly checks: Array<{ readonly target: string; readonly threshold: number | null; readonly pass: boolean | null }>
  readonly note?: string
}

const figures: Array<Figure> = []
/** Extra lines printed under the table: diagnostics that help read a figure. */
const notes: Array<string> = []
const checks: Array<Check> = []

const latencyFields = (summary: Summary) => ({
  n: summary.n,
  p50_ms: round(summary.p50),
  p99_ms: round(summary.p99),
  min_ms: round(summary.min),
  max_ms: round(summary.max),
  mean_ms: round(summary.mean)
})

const verdict = (pass: boolean): Result => (pass ? "PASS" : "MISS")

const skip = (id: string, name: string, target: string, note: string) => {
  figures.push({
    id,
    name,
    unit: "ms",
    measured: null,
    baseline: null,
    checks: [{ target, threshold: null, pass: null }],
    note
  })
  checks.push({ figure: name, measured: "skipped", baseline: "—", target, result: "SKIP" })
  progress(`${name}: skipped (${note})`)
}

/** A JobRun latency figure: p50 within 3 ms of the bare spawn's p50. */
const recordSpawnFigure = (id: string, name: string, daemon: Summary, bare: Summary) => {
  const threshold = bare.p50 + 3
  const pass = daemon.p50 <= threshold
  const target = `p50 ≤ baseline + 3 ms (≤ ${ms(threshold)})`
  figures.push({
    id,
    name,
    unit: "ms",
    measured: latencyFields(daemon),
    baseline: latencyFields(bare),
    checks: [{ target: "p50 <= baseline p50 + 3 ms", threshold: round(threshold), pass }]
  })
  checks.push({
    figure: name,
    measured: `p50 ${ms(daemon.p50)}, p99 ${ms(daemon.p99)}`,
    baseline: `p50 ${ms(bare.p50)}, p99 ${ms(bare.p99)}`,
    target,
    result: verdict(pass)
  })
}

/** The figure of each table row that bench/scale.ts reported (its rows are named apart from their figure). */
const figureOfRow = new Map<Check, string>()

/** How the groups of bench/scale.ts report: one figure, a table row per check. */
const report: Report = {
  progress,
  note: (line) => notes.push(line),
  record: (figure) => {
    figures.push({
      id: figure.id,
      name: figure.name,
      unit: figure.unit,
      measured: figure.measured,
      baseline: figure.baseline,
      checks: figure.checks.map((check) => ({ target: check.target, threshold: check.threshold, pass: check.pass }))
    })
    for (const check of figure.checks) {
      const row: Check = {
        figure: check.figure ?? figure.name,
        measured: check.measured,
        baseline: check.baseline,
        target: check.target,
        result: verdict(check.pass)
      }
      checks.push(row)
      figureOfRow.set(row, figure.id)
    }
  }
}

// ---------------------------------------------------------------------------
// Client helpers

/** A typed client for `daemon`, living until `scope` closes. */
const connect = (daemon: BenchDaemon, scope: Scope.CloseableScope) =>
  Effect.runPromise(make({ socketPath: daemon.socketPath }).pipe(Scope.extend(scope)))

const createCell = (client: PlanterClientShape, name: string) =>
  client.CellCreate({ name, env: {}, read_paths: [], network: "allow" })

/** Waits until the job has finished, and dies unless it exited 0 (its figure would mean nothing). */
const awaitJob = (client: PlanterClientShape, jobId: string) =>
  Effect.gen(function*() {
    yield* awaitJobEnd(client, jobId)
    const job = yield* client.JobStatus({ job_id: jobId })
    if (job.exit_code !== 0) {
      return yield* Effect.die(
        new Error(
          `job ${jobId} (${job.command.argv.join(" ")}) ended with ${
            job.exit_code ?? job.signal
          }: the figure would be meaningless`
        )
      )
    }
    return job
  })

/**
 * JobRun round trips of `true`, interleaved one by one with `baseline` so
 * that drift in the machine's load hits both alike.
 */
const spawnComparison = (client: PlanterClientShape, cellId: string, baseline: () => Promise<number>) =>
  Effect.gen(function*() {
    const daemon: Array<number> = []
    const bare: Array<number> = []
    let sandbox: Job["sandbox"] | undefined
    for (let i = 0; i < SPAWN_WARMUP + SPAWN_ITERATIONS; i++) {
      const bareMs = yield* Effect.promise(baseline)
      const start = performance.now()
      const job = yield* runJob(client, cellId, ["true"])
      const daemonMs = performance.now() - start
      yield* awaitJob(client, job.id)
      sandbox = job.sandbox
      if (i >= SPAWN_WARMUP) {
        daemon.push(daemonMs)
        bare.push(bareMs)
      }
    }
    return { daemon: summarize(daemon), bare: summarize(bare), sandbox: sandbox! }
  })

// ---------------------------------------------------------------------------
// The figures

const benchHealth = async (client: PlanterClientShape, scratch: string) => {
  progress(
    `Health round trip vs a raw Node echo over a Unix socket (${HEALTH_WARMUP} warm-up + ${HEALTH_ITERATIONS} each)`
  )
  const echo = await startEcho(path.join(scratch, "echo.sock"))
  const message = Buffer.alloc(64, 0x61)
  const results = await Effect.runPromise(Effect.gen(function*() {
    const health: Array<number> = []
    const raw: Array<number> = []
    const tierUp: Array<number> = []
    for (let i = 0; i < HEALTH_WARMUP + HEALTH_ITERATIONS; i++) {
      const rawMs = yield* Effect.promise(() => echo.roundTrip(message))
      const start = performance.now()
      yield* client.Health()
      const healthMs = performance.now() - start
      if (i >= TIER_UP_WINDOW.from && i < TIER_UP_WINDOW.to) tierUp.push(healthMs)
      if (i >= HEALTH_WARMUP) {
        health.push(healthMs)
        raw.push(rawMs)
      }
    }
    return { health: summarize(health), raw: summarize(raw), tierUp: summarize(tierUp) }
  })).finally(() => echo.close())
  const name = "Health round trip"
  const p50Pass = results.health.p50 <= 0.3
  const p99Pass = results.health.p99 <= 1
  figures.push({
    id: "health_round_trip",
    name,
    unit: "ms",
    measured: {
      ...latencyFields(results.health),
      warm_up_calls: HEALTH_WARMUP,
      tier_up_window_p50_ms: round(results.tierUp.p50),
      tier_up_window_p99_ms: round(results.tierUp.p99)
    },
    baseline: latencyFields(results.raw),
    checks: [
      { target: "p50 <= 0.3 ms", threshold: 0.3, pass: p50Pass },
      { target: "p99 <= 1 ms", threshold: 1, pass: p99Pass }
    ],
    note: `after ${HEALTH_WARMUP} warm-up calls; tier_up_window_*: calls ${
      TIER_UP_WINDOW.from + 1
    }–${TIER_UP_WINDOW.to}, the window checked before 74b2161`
  })
  notes.push(
    `Health round trip over calls ${
      TIER_UP_WINDOW.from + 1
    }–${TIER_UP_WINDOW.to}, the window checked before 74b2161 (no target): p50 ${ms(results.tierUp.p50)}, p99 ${
      ms(results.tierUp.p99)
    }; the checks above are over calls ${HEALTH_WARMUP + 1}–${HEALTH_WARMUP + HEALTH_ITERATIONS}`
  )
  checks.push({
    figure: `${name} (p50)`,
    measured: ms(results.health.p50),
    baseline: ms(results.raw.p50),
    target: "p50 ≤ 0.3 ms",
    result: verdict(p50Pass)
  })
  checks.push({
    figure: `${name} (p99)`,
    // The window checked before stays in the row, beside the one checked now.
    measured: `${ms(results.health.p99)} (calls ${TIER_UP_WINDOW.from + 1}–${TIER_UP_WINDOW.to}: ${
      ms(results.tierUp.p99)
    })`,
    baseline: ms(results.raw.p99),
    target: "p99 ≤ 1 ms",
    result: verdict(p99Pass)
  })
}

const benchJobRunDisabled = async (client: PlanterClientShape, cellId: string, scratch: string) => {
  progress(
    `JobRun latency, sandbox disabled, vs bare child_process.spawn of true (${SPAWN_WARMUP} warm-up + ${SPAWN_ITERATIONS})`
  )
  const home = fs.mkdtempSync(path.join(scratch, "spawn-"))
  const env = jobEnv(home, home)
  const baseline = () => timeSpawn("true", [], { cwd: home, env, stdio: "ignore", detached: true })
  const result = await Effect.runPromise(spawnComparison(client, cellId, baseline))
  if (result.sandbox.backend !== "none") {
    throw new Error(`expected an unsandboxed job, got backend ${result.sandbox.backend}`)
  }
  recordSpawnFigure("jobrun_latency_disabled", "JobRun latency, sandbox disabled", result.daemon, result.bare)
}

const benchJobRunBubblewrap = async (scratch: string) => {
  const name = "JobRun latency, bubblewrap"
  const target = "p50 ≤ baseline + 3 ms"
  if (process.platform !== "linux") return skip("jobrun_latency_bubblewrap", name, target, "bubblewrap is Linux only")
  const bwrap = process.env.PLANTER_BWRAP ||
    resolveExecutable("bwrap", { PATH: process.env.PATH ?? "/usr/bin:/bin" }, "/")
  if (bwrap === undefined) return skip("jobrun_latency_bubblewrap", name, target, "bwrap is not installed")

  const daemon = await startDaemon("enforced")
  const scope = Effect.runSync(Scope.make())
  try {
    const client = await connect(daemon, scope)
    const health = await Effect.runPromise(client.Health())
    if (!health.sandbox.available) {
      return skip(
        "jobrun_latency_bubblewrap",
        name,
        target,
        `the daemon cannot use bubblewrap here: ${health.sandbox.unavailable_reason}`
      )
    }
    const cell = await Effect.runPromise(createCell(client, "bench-bwrap"))
    progress(
      `${name} vs bare bwrap … true with the daemon's own arguments (${SPAWN_WARMUP} warm-up + ${SPAWN_ITERATIONS})`
    )
    const cellDir = fs.mkdtempSync(path.join(scratch, "bwrap-cell-"))
    const tmpDir = path.join(cellDir, ".tmp")
    fs.mkdirSync(tmpDir)
    const env = jobEnv(cellDir, tmpDir)
    const args = bubblewrapArgs(
      {
        jobId: "bench",
        argv: ["true"],
        cwd: cellDir,
        env,
        cellDir,
        tmpDir,
        readPaths: [],
        network: "allow",
        stdoutPath: "/dev/null",
        stderrPath: "/dev/null",
        statusPath: "/dev/null"
      },
      linuxSystemPaths()
    )
    // bwrap writes the job's status to descriptor 3, as under the daemon.
    const statusSink = fs.openSync("/dev/null", "w")
    const baseline = () =>
      timeSpawn(bwrap, args, {
        cwd: "/",
        env: LAUNCHER_ENV,
        stdio: ["ignore", "ignore", "ignore", statusSink],
        detached: true
      })
    const result = await Effect.runPromise(spawnComparison(client, cell.id, baseline))
    if (result.sandbox.backend !== "bubblewrap") {
      throw new Error(`expected a bubblewrap job, got backend ${result.sandbox.backend}`)
    }
    recordSpawnFigure("jobrun_latency_bubblewrap", name, result.daemon, result.bare)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await daemon.stop()
  }
}

const benchFollow = async (client: PlanterClientShape, cellId: string) => {
  progress(
    `follow latency: a job writes a line every ${FOLLOW_INTERVAL_MS} ms, ${FOLLOW_LINES} lines, followed with LogsRead(follow)`
  )
  // Each line carries the job's CLOCK_MONOTONIC reading (process.hrtime);
  // on Linux that clock is system wide, so the follower's own reading on
  // receipt gives the write → seen latency with no wall-clock skew.
  const script =
    `let i=0;const t=setInterval(()=>{process.stdout.write(process.hrtime.bigint()+"\\n");if(++i>=${FOLLOW_LINES})clearInterval(t)},${FOLLOW_INTERVAL_MS})`
  const latencies = await Effect.runPromise(Effect.gen(function*() {
    const job = yield* runJob(client, cellId, [process.execPath, "-e", script])
    const seen: Array<number> = []
    let offset = 0
    let partial = ""
    for (;;) {
      const chunk = yield* client.LogsRead({
        job_id: job.id,
        stream: "stdout",
        offset,
        max_bytes: 65536,
        follow: true,
        wait_ms: 10_000
      })
      const now = process.hrtime.bigint()
      offset = chunk.offset
      const lines = (partial + Buffer.from(chunk.data).toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) if (line.length > 0) seen.push(Number(now - BigInt(line)) / 1e6)
      if (chunk.complete) break
    }
    yield* awaitJob(client, job.id)
    return seen
  }))
  if (latencies.length !== FOLLOW_LINES) {
    throw new Error(`the follower saw ${latencies.length} lines, expected ${FOLLOW_LINES}`)
  }
  const summary = summarize(latencies.slice(FOLLOW_WARMUP_LINES))
  const pass = summary.p50 <= 5
  const name = "follow latency (write → client sees it)"
  figures.push({
    id: "follow_latency",
    name,
    unit: "ms",
    measured: latencyFields(summary),
    baseline: null,
    checks: [{ target: "p50 <= 5 ms", threshold: 5, pass }]
  })
  checks.push({
    figure: name,
    measured: `p50 ${ms(summary.p50)}, p99 ${ms(summary.p99)}`,
    baseline: "—",
    target: "p50 ≤ 5 ms",
    result: verdict(pass)
  })
}

const benchLogsRead = async (client: PlanterClientShape, cellId: string, daemon: BenchDaemon) => {
  progress(
    `logs transfer: a job writes ${
      LOG_BYTES / 1024 / 1024
    } MiB, read back through the handed-over descriptor and in 1 MiB LogsRead chunks, vs fs.read (${LOG_ROUNDS} rounds after a warm-up)`
  )
  const job = await Effect.runPromise(Effect.gen(function*() {
    const job = yield* runJob(client, cellId, ["head", "-c", String(LOG_BYTES), "/dev/zero"])
    return yield* awaitJob(client, job.id)
  }))
  const file = path.join(daemon.stateDir, "logs", `${job.id}.stdout.log`)
  const size = fs.statSync(file).size
  if (size !== LOG_BYTES) throw new Error(`${file} has ${size} bytes, expected ${LOG_BYTES}`)

  // CPU seconds spent per pass, by this client and by the daemon: unlike
  // wall time they hardly change when other work shares the cores.
  const daemonCpu = () => {
    const stat = fs.readFileSync(`/proc/${daemon.pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime + stime, in clock ticks (USER_HZ = 100)
  }
  const readAll = Effect.gen(function*() {
    const start = performance.now()
    let offset = 0
    let bytes = 0
    for (;;) {
      const chunk = yield* client.LogsRead({
        job_id: job.id,
        stream: "stdout",
        offset,
        max_bytes: LOG_CHUNK,
        follow: false,
        wait_ms: 0
      })
      bytes += chunk.data.length
      offset = chunk.offset
      if (chunk.complete) break
      if (chunk.data.length === 0) {
        return yield* Effect.die(new Error(`LogsRead stalled at offset ${offset} without completing`))
      }
    }
    return { bytes, seconds: (performance.now() - start) / 1000 }
  })

  // The transfer path: the daemon hands over the log's descriptor (LogsOpen) and the client reads the file itself.
  const readViaDescriptor = Effect.scoped(Effect.gen(function*() {
    const start = performance.now()
    const opened = yield* openLogFile(client, { job_id: job.id, stream: "stdout" })
    if (opened === null || opened.fd === null) {
      return yield* Effect.die(new Error("no descriptor was handed over: the figure would be meaningless"))
    }
    const buffer = Buffer.allocUnsafe(LOG_CHUNK)
    let bytes = 0
    for (;;) {
      const n = fs.readSync(opened.fd, buffer, 0, LOG_CHUNK, bytes)
      if (n === 0) break
      bytes += n
    }
    return { bytes, seconds: (performance.now() - start) / 1000 }
  }))

  const daemonRates: Array<number> = []
  const chunkRates: Array<number> = []
  const fsRates: Array<number> = []
  const clientCpu: Array<number> = []
  const serverCpu: Array<number> = []
  for (let round = 0; round <= LOG_ROUNDS; round++) {
    const bare = await fsReadThroughput(file, LOG_CHUNK)
    const viaDescriptor = await Effect.runPromise(readViaDescriptor)
    const cpuBefore = process.cpuUsage()
    const daemonBefore = process.platform === "linux" ? daemonCpu() : Number.NaN
    const viaChunks = await Effect.runPromise(readAll)
    const cpuUsed = process.cpuUsage(cpuBefore)
    if (round > 0) {
      clientCpu.push((cpuUsed.user + cpuUsed.system) / 1e6)
      serverCpu.push(process.platform === "linux" ? daemonCpu() - daemonBefore : Number.NaN)
    }
    if (bare.bytes !== LOG_BYTES || viaChunks.bytes !== LOG_BYTES || viaDescriptor.bytes !== LOG_BYTES) {
      throw new Error(
        `read ${bare.bytes} bytes with fs.read, ${viaDescriptor.bytes} through the descriptor and ${viaChunks.bytes} with LogsRead, expected ${LOG_BYTES}`
      )
    }
    if (round === 0) continue // warm-up: JIT, page cache, buffer pools
    fsRates.push(bare.bytes / bare.seconds)
    daemonRates.push(viaDescriptor.bytes / viaDescriptor.seconds)
    chunkRates.push(viaChunks.bytes / viaChunks.seconds)
  }
  const measured = median(daemonRates)
  const baseline = median(fsRates)
  const name = "logs transfer, typed client (LogsOpen)"
  notes.push(
    `logs: the fallback path, LogsRead in 1 MiB chunks (where no descriptor can be handed over), ran at ${
      gbps(median(chunkRates))
    } (${(median(chunkRates) / baseline * 100).toFixed(1)} % of fs.read); each 256 MiB pass cost ${
      median(clientCpu).toFixed(2)
    } s CPU in the client and ${median(serverCpu).toFixed(2)} s in the daemon (medians)`
  )
  figures.push({
    id: "logsread_throughput",
    name,
    unit: "bytes/s",
    measured: {
      bytes: LOG_BYTES,
      rounds: LOG_ROUNDS,
      median_bytes_per_s: Math.round(measured),
      best_bytes_per_s: Math.round(Math.max(...daemonRates)),
      logsread_chunks_median_bytes_per_s: Math.round(median(chunkRates)),
      logsread_chunks_client_cpu_s_per_round: round(median(clientCpu), 3),
      logsread_chunks_daemon_cpu_s_per_round: round(median(serverCpu), 2)
    },
    baseline: {
      bytes: LOG_BYTES,
      rounds: LOG_ROUNDS,
      median_bytes_per_s: Math.round(baseline),
      best_bytes_per_s: Math.round(Math.max(...fsRates))
    },
    checks: throughputChecks(name, measured, baseline, { baseline: "fs.read", ratioOf: "baseline" })
  })
  await benchLogsCli(daemon, job.id, file)
}

/**
 * The two checks of a log-transfer figure, ≥ 1 GB/s and ≥ 25 % of its baseline: added to the table, and
 * answered for the figure's JSON record.
 */
const throughputChecks = (
  name: string,
  measured: number,
  baseline: number,
  labels: { readonly baseline: string; readonly ratioOf: string }
) => {
  const ratio = measured / baseline
  const absolutePass = measured >= 1e9
  const ratioPass = ratio >= 0.25
  checks.push({
    figure: name,
    measured: gbps(measured),
    baseline: `${gbps(baseline)} (${labels.baseline})`,
    target: "≥ 1 GB/s",
    result: verdict(absolutePass)
  })
  checks.push({
    figure: `${name} (ratio)`,
    measured: `${(ratio * 100).toFixed(1)} % of ${labels.ratioOf}`,
    baseline: `${gbps(baseline)} (${labels.baseline})`,
    target: `≥ 25 % of ${labels.ratioOf}`,
    result: verdict(ratioPass)
  })
  return [
    { target: ">= 1 GB/s (10^9 bytes/s)", threshold: 1e9, pass: absolutePass },
    { target: `>= 25 % of ${labels.ratioOf}`, threshold: 0.25, pass: ratioPass }
  ]
}

/** Runs `file args > out` to its end; answers the wall time from spawn to exit, in seconds. */
/**
 * Times `command args > out`. `out` is a new file each time, as for
 * `planter logs JOB > file` into a file that did not exist: writing 256 MiB
 * over the previous round's 256 MiB, just truncated, took this ext4 ~2× as
 * long (cat: 140–180 ms instead of 85–90), for cat and planter alike, and
 * more or less so depending on what writeback had done since.
 */
const timeToFile = (command: string, args: ReadonlyArray<string>, out: string) =>
  new Promise<number>((resolve, reject) => {
    fs.rmSync(out, { force: true })
    const fd = fs.openSync(out, "w")
    const start = performance.now()
    const child = spawn(command, args, { stdio: ["ignore", fd, "inherit"] })
    fs.closeSync(fd)
    child.once("error", reject)
    child.once("exit", (code) => {
      const seconds = (performance.now() - start) / 1000
      if (code !== 0) reject(new Error(`${command} ${args.join(" ")} exited with ${code}`))
      else resolve(seconds)
    })
  })

const sha256File = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/**
 * `planter logs JOB > file`, the whole command (node start-up, connecting,
 * the version check, the transfer), against `cat LOG > file` in the same
 * rounds; `planter version` alone shows the start-up's share.
 */
const benchLogsCli = async (daemon: BenchDaemon, jobId: string, file: string) => {
  progress(
    `planter logs JOB > file vs cat LOG > file, ${LOG_BYTES / 1024 / 1024} MiB (${LOG_ROUNDS} rounds after a warm-up)`
  )
  const outDir = makeTempDir("planter-bench-logs-")
  try {
    const cli = ["--socket", daemon.socketPath]
    const catTimes: Array<number> = []
    const cliTimes: Array<number> = []
    const versionTimes: Array<number> = []
    for (let round = 0; round <= LOG_ROUNDS; round++) {
      const catSeconds = await timeToFile("cat", [file], path.join(outDir, "cat.out"))
      const cliSeconds = await timeToFile(planterBin, [...cli, "logs", jobId], path.join(outDir, "planter.out"))
      const versionSeconds = await timeToFile(planterBin, [...cli, "version"], path.join(outDir, "version.out"))
      if (round === 0) {
        const expected = sha256File(file)
        for (const out of ["cat.out", "planter.out"]) {
          if (sha256File(path.join(outDir, out)) !== expected) throw new Error(`${out}: sha256 differs from the log's`)
        }
        continue
      }
      catTimes.push(catSeconds)
      cliTimes.push(cliSeconds)
      versionTimes.push(versionSeconds)
    }
    const measured = LOG_BYTES / median(cliTimes)
    const baseline = LOG_BYTES / median(catTimes)
    const name = "planter logs JOB > file (whole command)"
    const transfer = LOG_BYTES / Math.max(1e-6, median(cliTimes) - median(versionTimes))
    notes.push(
      `planter logs > file: whole command ${
        ms(median(cliTimes) * 1000)
      } (sha256 identical to the log), of which start-up (\`planter version\`) ${
        ms(median(versionTimes) * 1000)
      }; the transfer alone ≈ ${gbps(transfer)}; cat ${ms(median(catTimes) * 1000)}`
    )
    figures.push({
      id: "logs_cli_throughput",
      name,
      unit: "bytes/s",
      measured: {
        bytes: LOG_BYTES,
        rounds: LOG_ROUNDS,
        median_seconds: round(median(cliTimes), 4),
        median_bytes_per_s: Math.round(measured),
        version_median_seconds: round(median(versionTimes), 4),
        transfer_bytes_per_s_excluding_startup: Math.round(transfer)
      },
      baseline: {
        bytes: LOG_BYTES,
        rounds: LOG_ROUNDS,
        median_seconds: round(median(catTimes), 4),
        median_bytes_per_s: Math.round(baseline)
      },
      checks: throughputChecks(name, measured, baseline, { baseline: "cat", ratioOf: "cat" })
    })
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true })
  }
}

/** CPU time (user + system) a process has used so far, in ms (USER_HZ = 100). */
const processCpuMs = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** The daemon's CPU share of one core over `MONITOR_WINDOW_MS`, in percent. */
const daemonCpuPercent = async (pid: number) => {
  const before = processCpuMs(pid)
  const startedAt = performance.now()
  await sleep(MONITOR_WINDOW_MS)
  return ((processCpuMs(pid) - before) / (performance.now() - startedAt)) * 100
}

const benchMonitor = async () => {
  const name = `limit monitor, ${MONITOR_JOBS} running jobs at 1 Hz`
  const target = "daemon CPU ≤ 2 % of one core over idle"
  if (process.platform !== "linux") return skip("monitor_cost", name, target, "reads the daemon's CPU time from /proc")
  progress(`${name}: the daemon's CPU over ${MONITOR_WINDOW_MS / 1000} s idle, then with ${MONITOR_JOBS} sleeping jobs`)
  const daemon = await startDaemon("disabled", { args: ["--monitor-interval", "1s"] })
  const scope = Effect.runSync(Scope.make())
  try {
    const client = await connect(daemon, scope)
    const cell = await Effect.runPromise(createCell(client, "bench-monitor"))
    await sleep(1000)
    const idle = await daemonCpuPercent(daemon.pid)
    for (let i = 0; i < MONITOR_JOBS; i++) await Effect.runPromise(runJob(client, cell.id, ["sleep", "600"]))
    await sleep(2000)
    const loaded = await daemonCpuPercent(daemon.pid)
    const health = await Effect.runPromise(client.Health())
    const monitor = health.monitor
    const over = loaded - idle
    const pass = over <= 2
    figures.push({
      id: "monitor_cost",
      name,
      unit: "% of one core",
      measured: {
        daemon_cpu_percent: round(loaded, 2),
        over_idle_percent: round(over, 2),
        monitor_self_percent: monitor?.cpu_percent_of_core ?? -1
      },
      baseline: { idle_daemon_cpu_percent: round(idle, 2) },
      checks: [{ target, threshold: 2, pass }]
    })
    checks.push({
      figure: name,
      measured: `${round(loaded, 2)} % (+${round(over, 2)} %)`,
      baseline: `idle ${round(idle, 2)} %`,
      target,
      result: verdict(pass)
    })
    notes.push(
      `monitor: daemon CPU ${round(idle, 2)} % of a core idle, ${
        round(loaded, 2)
      } % with ${MONITOR_JOBS} running unsandboxed jobs (the monitor's 1 Hz tick, which also records each tree's members); the monitor's own accounting: ${
        monitor ? `${monitor.mean_tick_cpu_us} µs per tick, ${monitor.cpu_percent_of_core} % of a core` : "n/a"
      }`
    )
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await daemon.stop()
  }
}

const benchLegacyImport = async (scratch: string) => {
  progress(
    `legacy import: ${LEGACY_JOBS} prototype job files (and ${
      2 * LEGACY_JOBS
    } logs), ${LEGACY_ROUNDS} rounds each of import-legacy and of a daemon start importing in place`
  )
  const source = path.join(scratch, "prototype")
  writePrototypeState(source, LEGACY_JOBS)
  const command: Array<number> = []
  const daemonStart: Array<number> = []
  const emptyStart: Array<number> = []
  const restart: Array<number> = []
  for (let round = 0; round < LEGACY_ROUNDS; round++) {
    // `planterd import-legacy --from DIR`: the whole command, node start-up included, copying every log.
    const target = path.join(scratch, `imported-${round}`)
    const result = await timeNode(planterdBin, ["import-legacy", "--from", source, "--state-dir", target, "--json"])
    const report = JSON.parse(result.stdout)
    if (report.jobs !== LEGACY_JOBS || report.logs !== 2 * LEGACY_JOBS || report.skipped.length !== 0) {
      throw new Error(
        `import-legacy imported ${report.jobs} jobs and ${report.logs} logs, skipped ${report.skipped.length}: the figure would be meaningless`
      )
    }
    command.push(result.ms)
    fs.rmSync(target, { recursive: true, force: true })

    // A daemon started on the prototype's own state dir: it imports in place before it answers.
    const inPlace = path.join(scratch, `in-place-${round}`)
    fs.cpSync(source, inPlace, { recursive: true })
    fs.chmodSync(inPlace, 0o700)
    const empty = makeTempDir("planter-bench-empty-")
    let start = performance.now()
    const baseline = await startDaemon("disabled", { stateDir: empty })
    emptyStart.push(performance.now() - start)
    await baseline.stop()
    start = performance.now()
    const importing = await startDaemon("disabled", { stateDir: inPlace, keepStateDir: true })
    daemonStart.push(performance.now() - start)
    const line = importing.output().split("\n").find((text) => text.includes("legacy import from"))
    if (line === undefined || !line.includes(`${LEGACY_JOBS} job(s)`)) {
      throw new Error(`the daemon did not import the ${LEGACY_JOBS} jobs:\n${importing.output()}`)
    }
    await importing.stop()
    // Started again: everything is imported already, only the listing is read.
    start = performance.now()
    const again = await startDaemon("disabled", { stateDir: inPlace })
    restart.push(performance.now() - start)
    await again.stop()
  }
  const commandMs = median(command)
  const importMs = median(daemonStart) - median(emptyStart)
  const commandPass = commandMs <= 5000
  const inPlacePass = importMs <= 5000
  const name = `legacy import, ${LEGACY_JOBS} job files`
  figures.push({
    id: "legacy_import",
    name,
    unit: "ms",
    measured: {
      jobs: LEGACY_JOBS,
      rounds: LEGACY_ROUNDS,
      import_legacy_command_median_ms: round(commandMs, 1),
      daemon_start_importing_median_ms: round(median(daemonStart), 1),
      daemon_restart_after_import_median_ms: round(median(restart), 1)
    },
    baseline: { daemon_start_empty_state_dir_median_ms: round(median(emptyStart), 1) },
    checks: [
      { target: "import-legacy command <= 5000 ms", threshold: 5000, pass: commandPass },
      { target: "daemon start importing in place, over an empty start, <= 5000 ms", threshold: 5000, pass: inPlacePass }
    ]
  })
  checks.push({
    figure: `${name} (import-legacy)`,
    measured: ms(commandMs),
    baseline: "—",
    target: "≤ 5 s",
    result: verdict(commandPass)
  })
  checks.push({
    figure: `${name} (at daemon start)`,
    measured: `+${ms(importMs)}`,
    baseline: `start ${ms(median(emptyStart))}`,
    target: "≤ 5 s over an empty start",
    result: verdict(inPlacePass)
  })
  notes.push(
    `legacy import: import-legacy ${
      command.map((x) => ms(x)).join(", ")
    } (whole command: node start-up, reading, one transaction, copying the ${LEGACY_JOBS} non-empty logs; empty ones are not copied); daemon start importing in place ${
      daemonStart.map((x) => ms(x)).join(", ")
    }, on an empty state dir ${emptyStart.map((x) => ms(x)).join(", ")}, restart after the import ${
      restart.map((x) => ms(x)).join(", ")
    }`
  )
}

// ---------------------------------------------------------------------------
// Report

/** CPU time in clock ticks: [all CPUs busy, this process and its reaped children (daemons, their jobs, baselines)]. */
const cpuTicks = (): [number, number] | undefined => {
  try {
    const all = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    const busy = all.reduce((sum, x) => sum + x, 0) - all[3]! - all[4]! // minus idle and iowait
    const self = fs.readFileSync("/proc/self/stat", "utf8")
    const fields = self.slice(self.lastIndexOf(")") + 2).split(" ").map(Number)
    return [busy, fields[11]! + fields[12]! + fields[13]! + fields[14]!] // utime, stime, cutime, cstime
  } catch {
    return undefined
  }
}

const machine = () => {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memory_gib: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    load_average_at_start: os.loadavg().map((x) => round(x, 2)),
    platform: `${process.platform}/${process.arch}`
  }
}

const table = (rows: ReadonlyArray<Check>) => {
  const header: Check = {
    figure: "figure",
    measured: "measured",
    baseline: "baseline (same run)",
    target: "target",
    result: "result" as Result
  }
  const all = [header, ...rows]
  const keys = ["figure", "measured", "baseline", "target", "result"] as const
  const widths = keys.map((key) => Math.max(...all.map((row) => [...row[key]].length)))
  const line = (row: Check) => keys.map((key, i) => row[key].padEnd(widths[i]!)).join(" | ").trimEnd()
  return [line(header), widths.map((w) => "-".repeat(w)).join("-+-"), ...rows.map(line)].join("\n")
}

const main = async () => {
  const startedAt = performance.now()
  const ticksAtStart = cpuTicks()
  const info = machine()
  const scratch = makeTempDir("planter-bench-scratch-")
  progress(`machine: ${info.cpu}, ${info.cores} cores, ${info.memory_gib} GiB, node ${info.node}, ${info.kernel}`)
  try {
    if (selected("jobrun") || selected("health") || selected("follow") || selected("logsread")) {
      const daemon = await startDaemon("disabled")
      const scope = Effect.runSync(Scope.make())
      try {
        const client = await connect(daemon, scope)
        const cell = await Effect.runPromise(createCell(client, "bench"))
        if (selected("jobrun")) await benchJobRunDisabled(client, cell.id, scratch)
        if (selected("health")) await benchHealth(client, scratch)
        if (selected("follow")) await benchFollow(client, cell.id)
        if (selected("logsread")) await benchLogsRead(client, cell.id, daemon)
      } finally {
        await Effect.runPromise(Scope.close(scope, Exit.void))
        await daemon.stop()
      }
    }
    if (selected("bubblewrap")) await benchJobRunBubblewrap(scratch)
    if (selected("legacy_import")) await benchLegacyImport(scratch)
    if (selected("monitor")) await benchMonitor()
    if (selected("joblist")) await benchJobList(report)
    if (selected("starts")) await benchStarts(report)
    if (selected("rss")) await benchRss(report)
    if (selected("conn_bounds")) await benchConnectionBounds(report)
    if (selected("cli")) await benchCli(report)
    if (selected("kill_tree")) await benchKillTree(report)
    if (selected("large_output")) await benchLargeOutput(report, scratch)
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }

  const order = [
    "jobrun_latency_disabled",
    "jobrun_latency_bubblewrap",
    "health_round_trip",
    "logsread_throughput",
    "logs_cli_throughput",
    "follow_latency",
    "legacy_import",
    "monitor_cost",
    "joblist_first_page",
    "starts_50",
    "daemon_rss",
    "connection_bounds",
    "cli_version",
    "cli_job_ls",
    "kill_tree",
    "large_output"
  ]
  const rank = (row: Check) =>
    order.indexOf(figureOfRow.get(row) ?? figures.find((f) => row.figure.startsWith(f.name))?.id ?? "")
  const rows = [...checks].sort((a, b) => rank(a) - rank(b))
  const seconds = (performance.now() - startedAt) / 1000
  const loadAtEnd = os.loadavg().map((x) => round(x, 2))
  // Other work on the cores delays every wake-up of the daemon and the
  // client, and the figures then say more about the machine than about
  // Planter. Measured as the CPU time used during the run by everything but
  // this benchmark and what it started (all daemons are reaped by now).
  const ticksAtEnd = cpuTicks()
  const otherCores = ticksAtStart && ticksAtEnd
    ? round(((ticksAtEnd[0] - ticksAtStart[0]) - (ticksAtEnd[1] - ticksAtStart[1])) / 100 / seconds, 2) // USER_HZ = 100
    : null
  const busy = otherCores !== null && otherCores > 0.2
  if (busy) {
    notes.unshift(
      `WARNING: other work kept ${otherCores} of ${info.cores} cores busy on average during this run: latencies and LogsRead throughput are inflated; rerun on an idle machine`
    )
  }
  const passed = rows.filter((row) => row.result === "PASS").length
  const measured = rows.filter((row) => row.result !== "SKIP").length

  if (asJson) {
    const sorted = [...figures].sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id))
    process.stdout.write(
      `${
        JSON.stringify(
          {
            machine: { ...info, load_average_at_end: loadAtEnd },
            other_work_cores: otherCores,
            busy,
            duration_s: round(seconds, 1),
            passed,
            checked: measured,
            figures: sorted,
            notes
          },
          null,
          2
        )
      }\n`
    )
    return
  }
  const out = [
    "Planter benchmark — targets from DESIGN.md \"Performance targets\"",
    `machine: ${info.cpu}; ${info.cores} cores; ${info.memory_gib} GiB; node ${info.node}; ${info.kernel} (${info.platform})`,
    `load average (1, 5, 15 min): ${info.load_average_at_start.join(", ")} at start; ${
      loadAtEnd.join(", ")
    } at end; other work during the run: ${otherCores ?? "n/a"} cores on average`,
    "",
    table(rows),
    "",
    `${passed} of ${measured} checks met${
      rows.length > measured ? `, ${rows.length - measured} skipped` : ""
    }; run took ${seconds.toFixed(1)} s`,
    ...notes,
    "latencies: JobRun = typed-client round trip until the job's pid is known; baseline = spawn() until its 'spawn' event.",
    "GB/s = 10^9 bytes per second; each figure's baseline was measured in this same run, interleaved with it."
  ]
  process.stdout.write(`${out.join("\n")}\n`)
}

process.on("exit", killAllDaemonsNow)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAllDaemonsNow()
    process.exit(130)
  })
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exitCode = 1
})
