import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import * as path from "node:path"
import type { PlanterClientShape } from "../rpc/client.js"
import { make as makeClient, PROTOCOL_VERSION } from "../rpc/client.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import type { Job, LogStream } from "../rpc/Models.js"
import { MAX_LOG_CHUNK_BYTES } from "../rpc/Rpcs.js"
import { defaultSocketPath, defaultStateDir } from "../services/DaemonConfig.js"
import {
  cellRows,
  CliFailure,
  encodeCell,
  encodeJob,
  ExitCode,
  jobDetails,
  jobExitCode,
  jobRows,
  printJson,
  printLine,
  usageError,
  write
} from "./Output.js"

// ---- global options -------------------------------------------------------

const planter = Command.make("planter", {
  socket: Options.text("socket").pipe(
    Options.withDescription("planterd's socket (default: $PLANTER_SOCKET or <state dir>/planterd.sock)"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("print exactly one JSON document on stdout"))
})

/** Runs `f` with a connected client, turning every failure into a CliFailure with the contract's exit code. */
const withClient = <A, E>(f: (client: PlanterClientShape, json: boolean) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const { json, socket } = yield* planter
    const socketPath = Option.match(socket, {
      onNone: () => defaultSocketPath(defaultStateDir()),
      onSome: (file) => path.resolve(file)
    })
    return yield* Effect.scoped(Effect.flatMap(makeClient({ socketPath }), (client) => f(client, json)))
  }).pipe(
    Effect.catchAll((error: unknown): Effect.Effect<never, CliFailure> => {
      const tagged = error as { _tag?: string; code?: string; message?: string; detail?: string }
      switch (tagged._tag) {
        case "CliFailure":
          return Effect.fail(error as CliFailure)
        case "DaemonUnavailable":
          return Effect.fail(new CliFailure({ exitCode: ExitCode.noDaemon, code: "no_daemon", message: tagged.message ?? "" }))
        case "RpcClientError":
          return Effect.fail(
            new CliFailure({ exitCode: ExitCode.daemonError, code: "connection_lost", message: `lost the connection to planterd: ${tagged.message}` })
          )
        default:
          return Effect.fail(
            new CliFailure({
              exitCode: ExitCode.daemonError,
              code: tagged.code ?? "internal",
              message: tagged.message ?? String(error),
              ...(tagged.detail !== undefined ? { detail: tagged.detail } : {})
            })
          )
      }
    })
  )

// ---- shared option parsers ------------------------------------------------

const parseEnv = (pairs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const env: Record<string, string> = {}
    for (const pair of pairs) {
      const eq = pair.indexOf("=")
      const name = eq < 0 ? "" : pair.slice(0, eq)
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        return yield* usageError(`--env ${pair}: expected NAME=VALUE with NAME made of letters, digits and underscores`)
      }
      env[name] = pair.slice(eq + 1)
    }
    return env
  })

const envOption = Options.text("env").pipe(
  Options.withDescription("environment variable NAME=VALUE (repeatable)"),
  Options.repeated
)
const networkOption = Options.choice("network", ["allow", "deny"]).pipe(
  Options.withDescription("network access for the jobs"),
  Options.optional
)
const forceOption = Options.boolean("force")

// ---- version, health ------------------------------------------------------

const version = Command.make("version", {}, () =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const daemon = yield* client.Version()
      if (json) {
        return yield* printJson({
          client_version: PLANTER_VERSION,
          client_protocol_version: PROTOCOL_VERSION,
          version: daemon.version,
          protocol_version: daemon.protocol_version
        })
      }
      yield* printLine(`planter ${PLANTER_VERSION} (protocol ${PROTOCOL_VERSION})`)
      yield* printLine(`planterd ${daemon.version} (protocol ${daemon.protocol_version})`)
    })
  )).pipe(Command.withDescription("Print the client's and the daemon's versions"))

const health = Command.make("health", {}, () =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const info = yield* client.Health()
      if (json) return yield* printJson(info)
      yield* printLine(`planterd ${info.version} ok, pid ${info.pid}, up ${Math.round(info.uptime_ms / 1000)}s`)
      yield* printLine(`socket:    ${info.socket}`)
      yield* printLine(`state dir: ${info.state_dir}`)
      yield* printLine(
        `sandbox:   ${info.sandbox.mode}, backend ${info.sandbox.backend}${
          info.sandbox.available ? "" : ` (unavailable: ${info.sandbox.unavailable_reason ?? "disabled"})`
        }`
      )
      yield* printLine(`running:   ${info.running_jobs} job(s)`)
    })
  )).pipe(Command.withDescription("Check that the daemon answers, and how it runs"))

// ---- cells ----------------------------------------------------------------

const createCell = (name: string) =>
  Command.make(name, {
    name: Options.text("name").pipe(Options.withDescription("the cell's name, unique")),
    env: envOption,
    read: Options.text("read").pipe(
      Options.withDescription("extra path the cell's jobs may read (repeatable)"),
      Options.repeated
    ),
    network: networkOption
  }, (options) =>
    withClient((client, json) =>
      Effect.gen(function*() {
        const env = yield* parseEnv(options.env)
        const cell = yield* client.CellCreate({
          name: options.name,
          env,
          read_paths: options.read.map((p) => path.resolve(p)),
          network: Option.getOrElse(options.network, () => "allow" as const)
        })
        if (json) return yield* printJson(encodeCell(cell))
        yield* printLine(`created cell ${cell.name} (${cell.id}) in ${cell.dir}`)
      })
    )).pipe(Command.withDescription("Create a cell: a directory with its own env and sandbox policy"))

const cellLs = Command.make("ls", {}, () =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const cells = yield* client.CellList()
      if (json) return yield* printJson(cells.map((cell) => encodeCell(cell)))
      yield* printLine(cells.length === 0 ? "no cells: create one with `planter create --name NAME`" : cellRows(cells))
    })
  )).pipe(Command.withDescription("List cells"))

const cellRm = Command.make("rm", {
  cell: Args.text({ name: "CELL" }),
  force: forceOption.pipe(Options.withDescription("kill the cell's running jobs first"))
}, ({ cell, force }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const removed = yield* client.CellRemove({ cell_id: cell, force })
      if (json) return yield* printJson(encodeCell(removed))
      yield* printLine(`removed cell ${removed.name} (${removed.id})`)
    })
  )).pipe(Command.withDescription("Remove a cell and its directory"))

const cellCommand = Command.make("cell").pipe(
  Command.withDescription("Manage cells"),
  Command.withSubcommands([createCell("create"), cellLs, cellRm])
)

// ---- logs -----------------------------------------------------------------

const FOLLOW_WAIT_MS = 30_000

/**
 * Copies a job's log from `offset` to `sink`. Following, it long-polls the
 * daemon (which answers as soon as bytes arrive) until the job has finished
 * and everything is read.
 */
const copyLog = (
  client: PlanterClientShape,
  jobId: string,
  stream: LogStream,
  offset: number,
  follow: boolean,
  sink: (data: Uint8Array) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    let next = offset
    for (;;) {
      const chunk = yield* client.LogsRead({
        job_id: jobId,
        stream,
        offset: next,
        max_bytes: MAX_LOG_CHUNK_BYTES,
        follow,
        wait_ms: follow ? FOLLOW_WAIT_MS : 0
      })
      yield* sink(chunk.data)
      next = chunk.offset
      if (chunk.complete || (!follow && chunk.eof)) return { offset: next, complete: chunk.complete }
    }
  })

const logs = Command.make("logs", {
  job: Args.text({ name: "JOB" }),
  follow: Options.boolean("follow").pipe(Options.withAlias("f"), Options.withDescription("keep reading until the job has finished")),
  stderr: Options.boolean("stderr").pipe(Options.withDescription("read stderr instead of stdout")),
  offset: Options.integer("offset").pipe(Options.withDescription("start at this byte"), Options.withDefault(0))
}, (options) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      if (options.offset < 0) return yield* usageError(`--offset ${options.offset}: give 0 or more bytes`)
      const stream: LogStream = options.stderr ? "stderr" : "stdout"
      if (!json) {
        yield* copyLog(client, options.job, stream, options.offset, options.follow, (data) => write(process.stdout, data))
        return
      }
      const parts: Array<Uint8Array> = []
      const end = yield* copyLog(client, options.job, stream, options.offset, options.follow, (data) => Effect.sync(() => parts.push(data)))
      yield* printJson({
        job_id: options.job,
        stream,
        offset: options.offset,
        next_offset: end.offset,
        complete: end.complete,
        data: Buffer.concat(parts).toString("utf8")
      })
    })
  )).pipe(Command.withDescription("Print a job's output, from an offset, optionally following it"))

// ---- jobs -----------------------------------------------------------------

const run = Command.make("run", {
  cell: Args.text({ name: "CELL" }),
  argv: Args.text({ name: "ARGV" }).pipe(Args.repeated),
  env: envOption,
  cwd: Options.text("cwd").pipe(Options.withDescription("working directory inside the cell dir"), Options.optional),
  network: networkOption,
  wait: Options.boolean("wait").pipe(Options.withDescription("stream the job's output and exit with its exit code"))
}, (options) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      if (options.argv.length === 0) return yield* usageError("nothing to run: give the command after `--`, e.g. planter run CELL -- echo hi")
      const env = yield* parseEnv(options.env)
      const job = yield* client.JobRun({
        cell_id: options.cell,
        argv: options.argv,
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
  cell: Options.text("cell").pipe(Options.withDescription("only this cell's jobs"), Options.optional)
}, ({ cell }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const jobs = yield* client.JobList({ cell_id: Option.getOrNull(cell) })
      if (json) return yield* printJson(jobs.map((job) => encodeJob(job)))
      yield* printLine(jobs.length === 0 ? "no jobs: start one with `planter run CELL -- COMMAND`" : jobRows(jobs))
    })
  )).pipe(Command.withDescription("List jobs"))

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

const jobCommand = Command.make("job").pipe(
  Command.withDescription("Inspect and kill jobs"),
  Command.withSubcommands([jobStatus, jobLs, jobKill])
)

export const command = planter.pipe(
  Command.withDescription("Talk to planterd: cells, jobs and their logs"),
  Command.withSubcommands([version, health, createCell("create"), cellCommand, run, jobCommand, logs])
)
