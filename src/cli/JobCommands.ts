import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Array as Arr, Chunk, Effect, Fiber, Option, Stream } from "effect"
import type { PlanterClientShape } from "../rpc/client.js"
import { statusText } from "../rpc/JobOutcome.js"
import type { Job } from "../rpc/Models.js"
import { allPages } from "../rpc/Paging.js"
import { DEFAULT_LIST_PAGE, MAX_LIST_PAGE, MAX_STDIN_CHUNK_BYTES } from "../rpc/Rpcs.js"
import { formatBytes, parseDuration } from "../services/Limits.js"
import {
  envOption,
  forceOption,
  maxLogOption,
  maxRssOption,
  networkOption,
  parseEnv,
  parseLabels,
  parseLimitFlags,
  timeoutOption,
  withClient
} from "./Global.js"
import { stopSignalReceived } from "./Interrupt.js"
import { forEachPage, jsonArrayWriter, listSpan } from "./ListPages.js"
import { copyLog } from "./LogsCommand.js"
import {
  encodeJob,
  endNote,
  jobDetails,
  jobExitCode,
  jobRows,
  printJson,
  printLine,
  topRows,
  usageError,
  write
} from "./Output.js"

/**
 * `run -i`: copies the CLI's stdin to the job's stdin pipe through
 * JobStdin, then closes it at EOF. A job that ends (or closes its stdin)
 * first simply stops the copy.
 */
const pumpStdin = (client: PlanterClientShape, jobId: string) =>
  Effect.gen(function*() {
    const chunks = process.stdin[Symbol.asyncIterator]()
    for (;;) {
      const next = yield* Effect.promise(() => chunks.next() as Promise<IteratorResult<Buffer>>)
      if (next.done) break
      for (let at = 0; at < next.value.length; at += MAX_STDIN_CHUNK_BYTES) {
        yield* client.JobStdin({ job_id: jobId, data: next.value.subarray(at, at + MAX_STDIN_CHUNK_BYTES), eof: false })
      }
    }
    yield* client.JobStdin({ job_id: jobId, data: new Uint8Array(0), eof: true })
  }).pipe(Effect.catchAll(() => Effect.void))

/**
 * Ctrl-C (or a SIGTERM) during `run --wait`: the job is killed (its whole
 * tree, as `job kill` does) and the CLI says so, or with
 * --detach-on-interrupt it keeps running and the CLI says how to follow and
 * stop it. An interruption without a stop signal (the daemon went away)
 * does nothing here.
 */
const onInterrupt = (client: PlanterClientShape, job: Job, detach: boolean, json: boolean) =>
  Effect.gen(function*() {
    if (stopSignalReceived() === undefined) return
    const ref = job.name ?? job.id
    if (detach) {
      if (json) return yield* printJson({ interrupted: true, action: "detached", job: encodeJob(job) })
      return yield* write(
        process.stderr,
        `planter: interrupted: ${job.id} keeps running (--detach-on-interrupt); follow it with \`planter logs ${ref} -f\`, stop it with \`planter job kill ${ref}\`\n`
      )
    }
    if (!json) {
      yield* write(
        process.stderr,
        `planter: interrupted: killing ${job.id} (SIGTERM to its tree, SIGKILL after the daemon's grace period)…\n`
      )
    }
    const killed = yield* Effect.either(client.JobKill({ job_id: job.id, force: false }))
    if (killed._tag === "Left") {
      const message = (killed.left as { message?: string }).message ?? String(killed.left)
      if (json) return yield* printJson({ interrupted: true, action: "kill_failed", error: { message } })
      return yield* write(process.stderr, `planter: could not kill ${job.id}: ${message}\n`)
    }
    if (json) return yield* printJson({ interrupted: true, action: "killed", job: encodeJob(killed.right) })
    yield* write(
      process.stderr,
      `planter: killed ${job.id}: ${statusText(killed.right)} (${
        killed.right.termination_reason ?? killed.right.status
      })\n`
    )
  })

export const run = Command.make("run", {
  cell: Args.text({ name: "CELL" }),
  argv: Args.text({ name: "ARGV" }).pipe(Args.repeated),
  env: envOption,
  cwd: Options.text("cwd").pipe(Options.withDescription("working directory inside the cell dir"), Options.optional),
  network: networkOption,
  timeout: timeoutOption,
  maxRss: maxRssOption,
  maxLog: maxLogOption,
  name: Options.text("name").pipe(
    Options.withDescription(
      "name the job, unique among the cell's running jobs; usable wherever a JOB is, e.g. --name build"
    ),
    Options.optional
  ),
  label: Options.text("label").pipe(
    Options.withDescription("label the job KEY=VALUE (repeatable), e.g. --label branch=main"),
    Options.repeated
  ),
  wait: Options.boolean("wait").pipe(Options.withDescription("stream the job's output and exit with its exit code")),
  interactive: Options.boolean("interactive").pipe(
    Options.withAlias("i"),
    Options.withDescription(
      "with --wait: forward this terminal's stdin to the job, e.g. echo hi | planter run C --wait -i -- cat"
    )
  ),
  detachOnInterrupt: Options.boolean("detach-on-interrupt").pipe(
    Options.withDescription(
      "with --wait: Ctrl-C stops waiting and leaves the job running (default: Ctrl-C kills the job)"
    )
  )
}, (options) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const argv = options.argv
      if (!Arr.isNonEmptyReadonlyArray(argv)) {
        return yield* usageError("nothing to run: give the command after `--`, e.g. planter run CELL -- echo hi")
      }
      if (!options.wait && (options.interactive || options.detachOnInterrupt)) {
        return yield* usageError(
          `${options.interactive ? "-i" : "--detach-on-interrupt"} needs --wait: planter run CELL --wait ${
            options.interactive ? "-i" : "--detach-on-interrupt"
          } -- ARGV...`
        )
      }
      const env = yield* parseEnv(options.env)
      const labels = yield* parseLabels(options.label)
      const limits = yield* parseLimitFlags(options)
      const job = yield* client.JobRun({
        limits,
        cell_id: options.cell,
        argv,
        env,
        cwd: Option.getOrNull(options.cwd),
        network: Option.getOrNull(options.network),
        name: Option.getOrNull(options.name),
        labels,
        stdin: options.interactive
      })
      if (!options.wait) {
        return yield* json ? printJson(encodeJob(job)) : printLine(job.id)
      }
      return yield* Effect.gen(function*() {
        const feeder = options.interactive ? yield* Effect.fork(pumpStdin(client, job.id)) : null
        const output = { stdout: [] as Array<Uint8Array>, stderr: [] as Array<Uint8Array> }
        if (!json) yield* write(process.stderr, `${job.id}\n`)
        yield* Effect.all([
          copyLog(client, job.id, "stdout", 0, true, (data) =>
            json
              ? Effect.sync(() => output.stdout.push(data))
              : write(process.stdout, data)),
          copyLog(client, job.id, "stderr", 0, true, (data) =>
            json
              ? Effect.sync(() => output.stderr.push(data))
              : write(process.stderr, data))
        ], { concurrency: 2 })
        if (feeder !== null) yield* Fiber.interrupt(feeder)
        const finished = yield* client.JobStatus({ job_id: job.id })
        const note = endNote(finished)
        if (!json && note !== undefined) yield* write(process.stderr, `planter: ${note}\n`)
        if (json) {
          // The job's output comes with its record (as UTF-8 text; `planter logs --json` for the exact bytes).
          yield* printJson({
            ...encodeJob(finished),
            stdout: Buffer.concat(output.stdout).toString("utf8"),
            stderr: Buffer.concat(output.stderr).toString("utf8")
          })
        }
        return jobExitCode(finished)
      }).pipe(Effect.onInterrupt(() => onInterrupt(client, job, options.detachOnInterrupt, json)))
    })
  )).pipe(Command.withDescription("Run a command in a cell: planter run CELL [--wait] -- ARGV..."))

const jobStatus = Command.make(
  "status",
  { job: Args.text({ name: "JOB" }) },
  ({ job }) =>
    withClient((client, json) =>
      Effect.gen(function*() {
        const found = yield* client.JobStatus({ job_id: job })
        yield* json ? printJson(encodeJob(found)) : printLine(jobDetails(found))
      })
    )
).pipe(Command.withDescription("Show a job's record"))

/** Every cell's name by its id (fetched a page at a time); a cell that cannot be listed shows as its id. */
const cellNamesById = (client: PlanterClientShape) =>
  Effect.gen(function*() {
    const names = new Map<string, string>()
    yield* forEachPage(
      { _tag: "all" },
      (after, pageLimit) =>
        Effect.map(client.CellList({ after, limit: pageLimit }), (page) => ({ rows: page.cells, next: page.next })),
      (cells) => Effect.sync(() => cells.forEach((c) => names.set(c.id, c.name)))
    ).pipe(Effect.orElseSucceed(() => false))
    return names
  })

const jobLs = Command.make("ls", {
  cell: Options.text("cell").pipe(Options.withDescription("only this cell's jobs, e.g. --cell demo"), Options.optional),
  name: Options.text("name").pipe(
    Options.withDescription("only jobs with this name, e.g. --name build"),
    Options.optional
  ),
  label: Options.text("label").pipe(
    Options.withDescription("only jobs with this label KEY=VALUE (repeatable: all must match)"),
    Options.repeated
  ),
  status: Options.choice("status", ["starting", "running", "exited"]).pipe(
    Options.withDescription("only jobs in this status"),
    Options.optional
  ),
  limit: Options.integer("limit").pipe(
    Options.withDescription(`the newest N jobs (default ${DEFAULT_LIST_PAGE})`),
    Options.optional
  ),
  all: Options.boolean("all").pipe(Options.withDescription("every job, newest first, fetched a page at a time"))
}, ({ all, cell, label, limit, name, status }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const span = yield* listSpan(limit, all, DEFAULT_LIST_PAGE)
      const labels = yield* parseLabels(label)
      const fetch = (after: string | null, pageLimit: number) =>
        Effect.map(
          client.JobList({
            cell_id: Option.getOrNull(cell),
            status: Option.getOrNull(status),
            name: Option.getOrNull(name),
            labels,
            after,
            limit: pageLimit
          }),
          (page) => ({ rows: page.jobs, next: page.next })
        )
      if (json) {
        const out = jsonArrayWriter()
        yield* forEachPage(span, fetch, (jobs) => out.page(jobs.map((job) => encodeJob(job))))
        return yield* out.end()
      }
      // Cells by name, for the CELL column: asked for while the first page of jobs is on its way (both
      // requests in flight on the one connection), waited for when that page is printed.
      const cellNames = yield* Effect.fork(cellNamesById(client))
      let shown = 0
      const more = yield* forEachPage(span, fetch, (jobs, first) => {
        shown += jobs.length
        if (jobs.length === 0) return Effect.void
        return Effect.flatMap(Fiber.join(cellNames), (names) => {
          // Each page is its own table; pages after the first leave out the header.
          const text = jobRows(jobs, names)
          return printLine(first ? text : text.slice(text.indexOf("\n") + 1))
        })
      })
      if (shown === 0) {
        const filtered = Option.isSome(cell) || Option.isSome(name) || Option.isSome(status) || label.length > 0
        yield* printLine(
          filtered
            ? "no jobs match: `planter job ls` lists every job"
            : "no jobs: start one with `planter run CELL -- COMMAND`"
        )
      }
      if (more) yield* write(process.stderr, `(the newest ${shown} shown: --limit N for more, --all for every job)\n`)
    })
  )).pipe(
    Command.withDescription(
      "List jobs newest first, like docker ps: planter job ls [--cell CELL] [--name NAME] [--label K=V] [--limit N | --all]"
    )
  )

const jobRm = Command.make(
  "rm",
  { job: Args.text({ name: "JOB" }) },
  ({ job }) =>
    withClient((client, json) =>
      Effect.gen(function*() {
        const removed = yield* client.JobRemove({ job_id: job })
        yield* json
          ? printJson(encodeJob(removed))
          : printLine(`removed ${removed.id}${removed.name ? ` (${removed.name})` : ""}: its record and logs`)
      })
    )
).pipe(Command.withDescription("Remove a finished job's record and logs: planter job rm JOB"))

const jobPrune = Command.make("prune", {
  olderThan: Options.text("older-than").pipe(
    Options.withDescription("remove finished jobs that ended at least this long ago, e.g. 7d, 12h")
  ),
  cell: Options.text("cell").pipe(Options.withDescription("only this cell's jobs"), Options.optional)
}, ({ cell, olderThan }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const ms = parseDuration(olderThan)
      if (typeof ms === "string") return yield* usageError(`--older-than ${ms}`)
      const result = yield* client.JobPrune({ older_than_ms: ms, cell_id: Option.getOrNull(cell) })
      if (json) return yield* printJson(result)
      yield* printLine(
        `removed ${result.removed.length} finished job(s) and ${formatBytes(result.freed_bytes)} of logs`
      )
    })
  )).pipe(
    Command.withDescription(
      "Remove finished jobs older than a duration, records and logs: planter job prune --older-than 7d"
    )
  )

const jobKill = Command.make("kill", {
  job: Args.text({ name: "JOB" }),
  force: forceOption.pipe(Options.withDescription("SIGKILL at once instead of SIGTERM, grace period, SIGKILL"))
}, ({ force, job }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const killed: Job = yield* client.JobKill({ job_id: job, force })
      yield* json
        ? printJson(encodeJob(killed))
        : printLine(`${killed.id}: ${killed.termination_reason ?? killed.status}`)
    })
  )).pipe(Command.withDescription("Kill a job's whole process tree"))

/** Running jobs with their live usage: refreshed every interval, or printed once (always once with --json). */
export const top = (name: string) =>
  Command.make(name, {
    once: Options.boolean("once").pipe(Options.withDescription("print once and exit")),
    interval: Options.integer("interval-ms").pipe(Options.withDescription("refresh period"), Options.withDefault(1000))
  }, ({ interval, once }) =>
    withClient((client, json) =>
      Effect.gen(function*() {
        const running = Effect.map(
          Stream.runCollect(
            allPages((after) => client.JobList({ status: ["starting", "running"], after, limit: MAX_LIST_PAGE }))
          ),
          (pages) => Chunk.toReadonlyArray(pages).flatMap((page) => page.jobs).reverse()
        )
        if (json) return yield* printJson((yield* running).map((job) => encodeJob(job)))
        if (once) return yield* printLine(topRows(yield* running))
        // On a terminal each refresh redraws the screen; into a pipe or a file, as `top -b`, the snapshots
        // follow one another, each under its time, with no escape codes in the way.
        const redraw = process.stdout.isTTY === true ? "\x1b[H\x1b[2J" : ""
        for (let first = true;; first = false) {
          const text = topRows(yield* running)
          const separator = redraw === "" && !first ? "\n" : redraw
          yield* write(process.stdout, `${separator}${new Date().toISOString()}  (Ctrl-C to stop)\n${text}\n`)
          yield* Effect.sleep(Math.max(100, interval))
        }
      })
    )).pipe(Command.withDescription("Show running jobs with their live usage (RSS, CPU %, processes, log bytes)"))

export const jobCommand = Command.make("job").pipe(
  Command.withDescription("Inspect and kill jobs"),
  Command.withSubcommands([jobStatus, jobLs, jobKill, jobRm, jobPrune, top("stats")])
)
