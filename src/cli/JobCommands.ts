import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Array as Arr, Chunk, Effect, Option, Stream } from "effect"
import type { Job } from "../rpc/Models.js"
import { allPages } from "../rpc/Paging.js"
import { DEFAULT_LIST_PAGE, MAX_LIST_PAGE } from "../rpc/Rpcs.js"
import { forEachPage, jsonArrayWriter, listSpan } from "./ListPages.js"
import { envOption, forceOption, maxLogOption, maxRssOption, networkOption, parseEnv, parseLimitFlags, timeoutOption, withClient } from "./Global.js"
import { copyLog } from "./LogsCommand.js"
import { encodeJob, jobDetails, jobExitCode, jobRows, printJson, printLine, topRows, usageError, write } from "./Output.js"

export const run = Command.make("run", {
  cell: Args.text({ name: "CELL" }),
  argv: Args.text({ name: "ARGV" }).pipe(Args.repeated),
  env: envOption,
  cwd: Options.text("cwd").pipe(Options.withDescription("working directory inside the cell dir"), Options.optional),
  network: networkOption,
  timeout: timeoutOption,
  maxRss: maxRssOption,
  maxLog: maxLogOption,
  wait: Options.boolean("wait").pipe(Options.withDescription("stream the job's output and exit with its exit code"))
}, (options) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const argv = options.argv
      if (!Arr.isNonEmptyReadonlyArray(argv)) return yield* usageError("nothing to run: give the command after `--`, e.g. planter run CELL -- echo hi")
      const env = yield* parseEnv(options.env)
      const limits = yield* parseLimitFlags(options)
      const job = yield* client.JobRun({
        limits,
        cell_id: options.cell,
        argv,
        env,
        cwd: Option.getOrNull(options.cwd),
        network: Option.getOrNull(options.network)
      })
      if (!options.wait) {
        return yield* json ? printJson(encodeJob(job)) : printLine(job.id)
      }
      if (!json) {
        yield* write(process.stderr, `${job.id}\n`)
        yield* Effect.all([
          copyLog(client, job.id, "stdout", 0, true, (data) => write(process.stdout, data)),
          copyLog(client, job.id, "stderr", 0, true, (data) => write(process.stderr, data))
        ], { concurrency: 2 })
      } else {
        yield* copyLog(client, job.id, "stdout", 0, true, () => Effect.void)
      }
      const finished = yield* client.JobStatus({ job_id: job.id })
      if (json) yield* printJson(encodeJob(finished))
      return jobExitCode(finished)
    })
  )).pipe(Command.withDescription("Run a command in a cell: planter run CELL [--wait] -- ARGV..."))

const jobStatus = Command.make("status", { job: Args.text({ name: "JOB" }) }, ({ job }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const found = yield* client.JobStatus({ job_id: job })
      yield* json ? printJson(encodeJob(found)) : printLine(jobDetails(found))
    })
  )).pipe(Command.withDescription("Show a job's record"))

const jobLs = Command.make("ls", {
  cell: Options.text("cell").pipe(Options.withDescription("only this cell's jobs"), Options.optional),
  status: Options.choice("status", ["starting", "running", "exited"]).pipe(Options.withDescription("only jobs in this status"), Options.optional),
  limit: Options.integer("limit").pipe(Options.withDescription(`the newest N jobs (default ${DEFAULT_LIST_PAGE})`), Options.optional),
  all: Options.boolean("all").pipe(Options.withDescription("every job, newest first, fetched a page at a time"))
}, ({ all, cell, limit, status }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const span = yield* listSpan(limit, all, DEFAULT_LIST_PAGE)
      const fetch = (after: string | null, pageLimit: number) =>
        Effect.map(
          client.JobList({ cell_id: Option.getOrNull(cell), status: Option.getOrNull(status), after, limit: pageLimit }),
          (page) => ({ rows: page.jobs, next: page.next })
        )
      if (json) {
        const out = jsonArrayWriter()
        yield* forEachPage(span, fetch, (jobs) => out.page(jobs.map((job) => encodeJob(job))))
        return yield* out.end()
      }
      let shown = 0
      const more = yield* forEachPage(span, fetch, (jobs, first) => {
        shown += jobs.length
        if (jobs.length === 0) return Effect.void
        // Each page is its own table; pages after the first leave out the header.
        const text = jobRows(jobs)
        return printLine(first ? text : text.slice(text.indexOf("\n") + 1))
      })
      if (shown === 0) yield* printLine("no jobs: start one with `planter run CELL -- COMMAND`")
      if (more) yield* write(process.stderr, `(the newest ${shown} shown: --limit N for more, --all for every job)\n`)
    })
  )).pipe(Command.withDescription("List jobs, newest first"))

const jobKill = Command.make("kill", {
  job: Args.text({ name: "JOB" }),
  force: forceOption.pipe(Options.withDescription("SIGKILL at once instead of SIGTERM, grace period, SIGKILL"))
}, ({ force, job }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const killed: Job = yield* client.JobKill({ job_id: job, force })
      yield* json ? printJson(encodeJob(killed)) : printLine(`${killed.id}: ${killed.termination_reason ?? killed.status}`)
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
          Stream.runCollect(allPages((after) => client.JobList({ status: ["starting", "running"], after, limit: MAX_LIST_PAGE }))),
          (pages) => Chunk.toReadonlyArray(pages).flatMap((page) => page.jobs).reverse()
        )
        if (json) return yield* printJson((yield* running).map((job) => encodeJob(job)))
        if (once) return yield* printLine(topRows(yield* running))
        while (true) {
          const text = topRows(yield* running)
          yield* write(process.stdout, `\x1b[H\x1b[2J${new Date().toISOString()}  (Ctrl-C to stop)\n${text}\n`)
          yield* Effect.sleep(Math.max(100, interval))
        }
      })
    )).pipe(Command.withDescription("Show running jobs with their live usage (RSS, CPU %, processes, log bytes)"))

export const jobCommand = Command.make("job").pipe(
  Command.withDescription("Inspect and kill jobs"),
  Command.withSubcommands([jobStatus, jobLs, jobKill, top("stats")])
)

