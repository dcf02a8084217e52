import { Effect, Schema } from "effect"
import * as os from "node:os"
import { jobOutcome, statusText } from "../rpc/JobOutcome.js"
import { Cell, Job } from "../rpc/Models.js"
import type { CellInfo } from "../rpc/Models.js"
import { formatBytes, formatDuration, formatLimit, fromStored, limitOfReason } from "../services/Limits.js"
import { ago, shortDuration } from "./HumanTime.js"
import type { Colour } from "./Style.js"
import { colourOn, paint } from "./Style.js"

/** Exit codes of `planter`, as the CLI contract fixes them. */
export const ExitCode = { ok: 0, daemonError: 1, usage: 2, noDaemon: 3, connectionLost: 4 } as const

/** A failure the CLI reports itself: the message goes to stderr (or into the JSON document) and sets the exit code. */
export class CliFailure extends Schema.TaggedError<CliFailure>()("CliFailure", {
  exitCode: Schema.Number,
  code: Schema.String,
  message: Schema.String,
  detail: Schema.optional(Schema.String)
}) {}

export const usageError = (message: string) => new CliFailure({ exitCode: ExitCode.usage, code: "usage", message })

/** Writes and waits for the stream to take it, so large outputs keep their order and are not cut at exit. */
export const write = (stream: NodeJS.WritableStream, data: string | Uint8Array) =>
  Effect.async<void>((resume) => {
    if (data.length === 0) return resume(Effect.void)
    stream.write(data, () => resume(Effect.void))
  })

export const printLine = (line: string) => write(process.stdout, line + "\n")

export const printJson = (value: unknown) => write(process.stdout, JSON.stringify(value, null, 2) + "\n")

export const encodeCell = Schema.encodeSync(Cell)
const encodeJobRecord = Schema.encodeSync(Job)

/** A job as `--json` prints it: its record, plus `outcome` (JobOutcome) so a killed job is told from one that exited. */
export const encodeJob = (job: Job) => ({ ...encodeJobRecord(job), outcome: jobOutcome(job) })

const time = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString())

/**
 * Left-aligned columns, the widest cell of each column setting its width.
 * `colourOf` may colour a body cell; widths are measured on the plain text.
 */
export const table = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  colourOf: (row: number, column: number) => Colour | null = () => null,
  colour = false
) => {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)))
  return [header, ...rows]
    .map((row, index) =>
      row.map((cell, column) => {
        const padded = column === row.length - 1 ? cell : cell.padEnd(widths[column]!)
        return index === 0 ? padded : paint(colour, colourOf(index - 1, column), padded)
      }).join("  ").trimEnd()
    )
    .join("\n")
}

/** At most `max` characters, cut with an ellipsis. */
const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

const quoteArg = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)
export const commandLine = (argv: ReadonlyArray<string>) => argv.map(quoteArg).join(" ")

/** `planter cell ls`: CREATED is relative, as `job ls`'s STARTED (`cell show` and `--json` give the time). */
export const cellRows = (cells: ReadonlyArray<Cell>, nowMs: number = Date.now()) =>
  table(
    ["ID", "NAME", "NETWORK", "CREATED", "DIR"],
    cells.map((cell) => [cell.id, cell.name, cell.network, ago(cell.created_at_ms, nowMs), cell.dir])
  )

const statusColour = (job: Job): Colour | null => {
  switch (jobOutcome(job)) {
    case "running":
      return "green"
    case "exited":
      return job.exit_code === 0 ? null : "red"
    case "killed":
      return "yellow"
    case "lost":
    case "unknown":
      return "dim"
    default:
      return "red"
  }
}

/** How long it ran, or has run so far. */
const jobDuration = (job: Job, nowMs: number) => shortDuration((job.finished_at_ms ?? nowMs) - job.started_at_ms)

/**
 * `planter job ls`, read like `docker ps`: ID, NAME, CELL (by name), STATUS
 * (coloured on a terminal), STARTED (relative), DURATION, COMMAND (clipped).
 */
export const jobRows = (
  jobs: ReadonlyArray<Job>,
  cellNames: ReadonlyMap<string, string> = new Map(),
  nowMs = Date.now(),
  colour = colourOn(process.stdout)
) =>
  table(
    ["ID", "NAME", "CELL", "STATUS", "STARTED", "DURATION", "COMMAND"],
    jobs.map((job) => [
      job.id,
      job.name ?? "-",
      cellNames.get(job.cell_id) ?? job.cell_id,
      statusText(job),
      ago(job.started_at_ms, nowMs),
      jobDuration(job, nowMs),
      clip(commandLine(job.command.argv), 40)
    ]),
    (row, column) => (column === 3 ? statusColour(jobs[row]!) : null),
    colour
  )

/** `planter cell show CELL`. */
export const cellDetails = (info: CellInfo, nowMs = Date.now()) => {
  const { cell } = info
  const limits = fromStored(cell.limits)
  return [
    `id:           ${cell.id}`,
    `name:         ${cell.name}`,
    `dir:          ${cell.dir}`,
    `created:      ${time(cell.created_at_ms)} (${ago(cell.created_at_ms, nowMs)})`,
    `owner uid:    ${cell.owner_uid ?? "-"}`,
    `network:      ${cell.network}`,
    `read paths:   ${cell.read_paths.length === 0 ? "-" : cell.read_paths.join(", ")}`,
    `env:          ${
      Object.keys(cell.env).length === 0 ? "-" : Object.entries(cell.env).map(([k, v]) => `${k}=${v}`).join(" ")
    }`,
    `limits:       timeout ${limits.timeout_ms === null ? "none" : formatDuration(limits.timeout_ms)}, max rss ${
      limits.max_rss_bytes === null ? "none" : formatBytes(limits.max_rss_bytes)
    }, max log ${limits.max_log_bytes === null ? "none" : formatBytes(limits.max_log_bytes)}`,
    `jobs:         ${info.running_jobs} running, ${info.total_jobs} in all${
      info.last_job_started_at_ms === null ? "" : `, last started ${ago(info.last_job_started_at_ms, nowMs)}`
    }`
  ].join("\n")
}

export const jobDetails = (job: Job) =>
  [
    `id:           ${job.id}`,
    `name:         ${job.name ?? "-"}`,
    `labels:       ${
      Object.keys(job.labels).length === 0 ? "-" : Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(" ")
    }`,
    `cell:         ${job.cell_id}`,
    `command:      ${commandLine(job.command.argv)}`,
    `cwd:          ${job.command.cwd}`,
    `status:       ${statusText(job)}`,
    `exit code:    ${job.exit_code ?? "-"}`,
    `signal:       ${job.signal ?? "-"}`,
    `reason:       ${job.termination_reason ?? "-"}`,
    `pid:          ${job.pid ?? "-"}`,
    `started:      ${time(job.started_at_ms)}`,
    `finished:     ${time(job.finished_at_ms)}`,
    `sandbox:      ${job.sandbox.mode}, backend ${job.sandbox.backend}, network ${job.sandbox.network}${
      job.sandbox.fallback_reason ? `\nfallback:     ${job.sandbox.fallback_reason}` : ""
    }`,
    `limits:       ${limitsLine(job)}`,
    ...usageLines(job),
    ...killLine(job)
  ].join("\n")

const limitsLine = (job: Job) => {
  const limits = fromStored(job.command.limits)
  return [
    `timeout ${limits.timeout_ms === null ? "none" : formatDuration(limits.timeout_ms)}`,
    `max rss ${limits.max_rss_bytes === null ? "none" : formatBytes(limits.max_rss_bytes)}`,
    `max log ${limits.max_log_bytes === null ? "none" : formatBytes(limits.max_log_bytes)}`
  ].join(", ")
}

const usageLines = (job: Job): Array<string> => {
  const usage = job.usage
  if (usage !== null) {
    return [
      `usage:        rss ${formatBytes(usage.rss_bytes)} (peak ${formatBytes(usage.peak_rss_bytes)}), cpu ${
        usage.cpu_percent === null ? "-" : `${usage.cpu_percent}%`
      } (${formatDuration(usage.cpu_ms)}), ${usage.processes} process(es), log ${
        formatBytes(usage.log_bytes)
      }, elapsed ${formatDuration(usage.elapsed_ms)}`
    ]
  }
  if (job.status === "exited" && (job.peak_rss_bytes !== null || job.cpu_ms !== null)) {
    return [
      `peak:         rss ${job.peak_rss_bytes === null ? "-" : formatBytes(job.peak_rss_bytes)}, cpu time ${
        job.cpu_ms === null ? "-" : formatDuration(job.cpu_ms)
      }`
    ]
  }
  return []
}

/** `memory_limit (observed 612 MiB > limit 512 MiB)` for a job a limit ended, else undefined. */
const limitKill = (job: Job): string | undefined => {
  const name = limitOfReason(job.termination_reason)
  if (name === undefined || job.limit_detail === null) return undefined
  const { limit, observed } = job.limit_detail
  return `${job.termination_reason} (observed ${formatLimit(name, observed)} > limit ${formatLimit(name, limit)})`
}

/** `killed: memory_limit (observed 612 MiB > limit 512 MiB)` for a job a limit ended. */
export const killLine = (job: Job): Array<string> => {
  const kill = limitKill(job)
  return kill === undefined ? [] : [`killed:       ${kill}`]
}

/**
 * What `run --wait` says on stderr when the job did not end on its own: a limit, a kill, the daemon's
 * shutdown. Its exit code alone (137, 143) would not say which.
 */
export const endNote = (job: Job): string | undefined => {
  const reason = job.termination_reason
  if (reason === null || reason === "exited") return undefined
  const kill = limitKill(job)
  if (kill !== undefined) return `${job.id} killed: ${kill}`
  // `lost`, or a limit without its detail: the status is the reason already.
  const status = statusText(job)
  return status === reason ? `${job.id} ${reason}` : `${job.id} ${status}: ${reason}`
}

export const topRows = (jobs: ReadonlyArray<Job>) =>
  jobs.length === 0
    ? "no running jobs"
    : table(
      ["ID", "CELL", "RSS", "CPU", "PROCS", "LOG", "ELAPSED", "COMMAND"],
      jobs.map((job) => {
        const usage = job.usage
        return [
          job.id,
          job.cell_id,
          usage ? formatBytes(usage.rss_bytes) : "-",
          usage?.cpu_percent != null ? `${usage.cpu_percent}%` : "-",
          usage ? String(usage.processes) : "-",
          usage ? formatBytes(usage.log_bytes) : "-",
          usage ? formatDuration(usage.elapsed_ms) : "-",
          commandLine(job.command.argv)
        ]
      })
    )

/** The exit code `run --wait` ends with: the job's own, or 128+signal as shells do (the record says the signal). */
export const jobExitCode = (job: Job): number => {
  if (job.exit_code !== null) return job.exit_code
  if (job.signal !== null) return 128 + ((os.constants.signals as Record<string, number>)[job.signal] ?? 0)
  return 1
}
