/**
 * Two of DESIGN.md's performance targets about a job's end (run by bench/run.ts): killing a tree whose
 * members honour SIGTERM, done and verified empty, and a job's 200 MB of output complete on disk when the
 * job is reported finished.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { parseProcStat } from "../src/layers/ProcessProbeLive.js"
import { logFileName } from "../src/services/LogReader.js"
import { isRunning, type ProcessEntry } from "../src/services/ProcessProbe.js"
import { sleep, startDaemon } from "./daemon.js"
import { awaitJobEnd, runJob } from "./jobs.js"
import { type Report, withClient } from "./scale.js"
import { median, ms, round, summarize } from "./stats.js"

const KILL_WARMUP = 3
const KILL_ROUNDS = 20
/** The job's tree: its shell and three children that each honour SIGTERM (sleep's default action). */
const TREE_SCRIPT = "sleep 300 & sleep 300 & sleep 300 & wait"
const TREE_MEMBERS = 4

const OUTPUT_BYTES = 200_000_000
const OUTPUT_ROUNDS = 10
/** The job writes this line over and over (`yes`), cut at OUTPUT_BYTES: content the bench can hash itself. */
const OUTPUT_LINE = "planter writes 200 MB and loses none of it\n"
const outputScript = (bytes: number) => `yes '${OUTPUT_LINE.trimEnd()}' | head -c ${bytes}`

/** The pids of `pid`'s children (Linux 3.5 and later: /proc/PID/task/TID/children). */
const childrenOf = (pid: number): Array<number> => {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** What /proc says of `pid` now (undefined once it is gone). */
const entryOf = (pid: number): ProcessEntry | undefined => {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "latin1"))
  } catch {
    return undefined
  }
}

export const benchKillTree = async (report: Report) => {
  report.progress(
    `kill of a job's tree (a shell and 3 children that honour SIGTERM), JobKill until answered, ${KILL_WARMUP} warm-up + ${KILL_ROUNDS}`
  )
  const daemon = await startDaemon("disabled")
  try {
    const results = await withClient(daemon, (client) =>
      Effect.gen(function*() {
        const cell = yield* client.CellCreate({ name: "bench-kill", env: {}, read_paths: [], network: "allow" })
        const latencies: Array<number> = []
        let survivors = 0
        for (let round = 0; round < KILL_WARMUP + KILL_ROUNDS; round++) {
          const job = yield* runJob(client, cell.id, ["sh", "-c", TREE_SCRIPT])
          // The whole tree up before the kill: the shell and its three sleeps.
          let members: Array<number> = []
          for (let i = 0; i < 500 && members.length < TREE_MEMBERS; i++) {
            members = [job.pid!, ...childrenOf(job.pid!)]
            if (members.length < TREE_MEMBERS) yield* Effect.promise(() => sleep(2))
          }
          if (members.length < TREE_MEMBERS) return yield* Effect.die(`job ${job.id}: its tree never came up`)
          const started = members.map((pid) => [pid, entryOf(pid)?.startTime ?? null] as const)
          const start = performance.now()
          const killed = yield* client.JobKill({ job_id: job.id, force: false })
          const elapsed = performance.now() - start
          if (killed.status !== "exited") return yield* Effect.die(`job ${job.id} answered ${killed.status}`)
          // Verified empty when answered: no member left (a pid reused since would have another start time).
          survivors += started.filter(([pid, at]) => at !== null && isRunning(entryOf(pid), at)).length
          if (round >= KILL_WARMUP) latencies.push(elapsed)
        }
        return { latencies: summarize(latencies), survivors }
      }))
    const pass = results.latencies.p50 <= 50 && results.survivors === 0
    report.record({
      id: "kill_tree",
      name: "kill of a tree whose members honour SIGTERM",
      unit: "ms",
      measured: {
        p50_ms: round(results.latencies.p50),
        p99_ms: round(results.latencies.p99),
        max_ms: round(results.latencies.max),
        members_left: results.survivors
      },
      baseline: null,
      checks: [{
        target: "done and verified empty ≤ 50 ms",
        threshold: 50,
        pass,
        measured: `p50 ${ms(results.latencies.p50)}, p99 ${ms(results.latencies.p99)}; ${results.survivors} of ${
          KILL_ROUNDS * TREE_MEMBERS
        } members left`,
        baseline: "pm2 3.2 s (DESIGN.md)"
      }]
    })
  } finally {
    await daemon.stop()
  }
}

/** sha256 of the first `bytes` of OUTPUT_LINE repeated: what the job's log must hold. */
const expectedOutputHash = (bytes: number) => {
  const block = Buffer.from(OUTPUT_LINE.repeat(Math.ceil(65_536 / OUTPUT_LINE.length)))
  const hash = createHash("sha256")
  let left = bytes
  while (left > 0) {
    const piece = block.subarray(0, Math.min(left, block.length))
    hash.update(piece)
    left -= piece.length
  }
  return hash.digest("hex")
}

const fileHash = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256")
    fs.createReadStream(file).on("data", (chunk) => hash.update(chunk)).on("error", reject).on(
      "end",
      () => resolve(hash.digest("hex"))
    )
  })

/** The same write straight to a file, spawn to exit: the baseline. */
const writeStraight = (file: string) =>
  new Promise<number>((resolve, reject) => {
    const start = performance.now()
    const child = spawn("sh", ["-c", `${outputScript(OUTPUT_BYTES)} > '${file}'`], { stdio: "ignore" })
    child.once("error", reject)
    child.once("exit", (code) => (code === 0 ? resolve(performance.now() - start) : reject(new Error(`exit ${code}`))))
  })

export const benchLargeOutput = async (report: Report, scratch: string) => {
  report.progress(
    `a job writing ${
      OUTPUT_BYTES / 1e6
    } MB: its log complete on disk when the job is reported finished, ${OUTPUT_ROUNDS} runs, beside the same write straight to a file`
  )
  const expected = expectedOutputHash(OUTPUT_BYTES)
  const daemon = await startDaemon("disabled")
  try {
    const straight: Array<number> = []
    const results = await withClient(daemon, (client) =>
      Effect.gen(function*() {
        const cell = yield* client.CellCreate({ name: "bench-output", env: {}, read_paths: [], network: "allow" })
        const times: Array<number> = []
        let complete = 0
        const problems: Array<string> = []
        for (let round = 0; round < OUTPUT_ROUNDS; round++) {
          const file = path.join(scratch, "straight.out")
          straight.push(yield* Effect.promise(() => writeStraight(file)))
          fs.rmSync(file, { force: true })
          const start = performance.now()
          const job = yield* runJob(client, cell.id, ["sh", "-c", outputScript(OUTPUT_BYTES)])
          // Reported finished: the daemon has recorded the job's end (its stderr follow completes then).
          yield* awaitJobEnd(client, job.id)
          const status = yield* client.JobStatus({ job_id: job.id })
          times.push(performance.now() - start)
          // What is on disk right then, read through the log file the daemon writes to.
          const log = path.join(daemon.stateDir, "logs", logFileName(job.id, "stdout"))
          const size = fs.statSync(log).size
          const hash = yield* Effect.promise(() => fileHash(log))
          if (status.status === "exited" && status.exit_code === 0 && size === OUTPUT_BYTES && hash === expected) {
            complete++
          } else {
            problems.push(`${job.id}: ${status.status} (exit ${status.exit_code}), ${size} bytes, sha256 ${hash}`)
          }
          fs.rmSync(log, { force: true })
        }
        return { times, complete, problems }
      }))
    for (const problem of results.problems) report.note(`200 MB output: ${problem}`)
    const pass = results.complete === OUTPUT_ROUNDS
    report.record({
      id: "large_output",
      name: `${OUTPUT_BYTES / 1e6} MB written by a job`,
      unit: "runs",
      measured: {
        complete_runs: results.complete,
        runs: OUTPUT_ROUNDS,
        job_median_ms: round(median(results.times)),
        straight_median_ms: round(median(straight))
      },
      baseline: { straight_median_ms: round(median(straight)) },
      checks: [{
        target: "complete on disk when reported finished, 0 bytes lost in 10 of 10 runs",
        threshold: OUTPUT_ROUNDS,
        pass,
        measured: `${results.complete} of ${OUTPUT_ROUNDS} complete (sha256); job ${
          ms(median(results.times))
        } run to recorded end`,
        baseline: `same write to a file ${ms(median(straight))}`
      }]
    })
  } finally {
    await daemon.stop()
  }
}
