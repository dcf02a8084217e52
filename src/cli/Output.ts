import { Effect, Schema } from "effect"
import * as os from "node:os"
import { Cell, Job } from "../rpc/Models.js"
import { formatBytes, formatDuration, formatLimit, fromStored, limitOfReason } from "../services/Limits.js"

/** Exit codes of `planter`, as the CLI contract fixes them. */
export const ExitCode = { ok: 0, daemonError: 1, usage: 2, noDaemon: 3 } as const

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
export const encodeJob = Schema.encodeSync(Job)

const time = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString())

/** Left-aligned columns, the widest cell of each column setting its width. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)))
  return [header, ...rows]
    .map((row) => row.map((cell, column) => column === row.length - 1 ? cell : cell.padEnd(widths[column]!)).join("  "))
    .join("\n")
}

const quoteArg = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)
export const commandLine = (argv: ReadonlyArray<string>) => argv.map(quoteArg).join(" ")

export const cellRows = (cells: ReadonlyArray<Cell>) =>
  table(
    ["ID", "NAME", "NETWORK", "CREATED", "DIR"],
    cells.map((cell) => [cell.id, cell.name, cell.network, time(cell.created_at_ms), cell.dir])
  )

const outcome = (job: Job) =>
  job.status !== "exited"
    ? job.status
    : job.signal !== null
    ? `${job.termination_reason} (${job.signal})`
    : `${job.termination_reason} (exit ${job.exit_code ?? "unknown"})`

export const jobRows = (jobs: ReadonlyArray<Job>) =>
  table(
    ["ID", "CELL", "STATUS", "STARTED", "COMMAND"],
    jobs.map((job) => [job.id, job.cell_id, outcome(job), time(job.started_at_ms), commandLine(job.command.argv)])
  )

export const jobDetails = (job: Job) =>
  [
    `id:           ${job.id}`,
    `cell:         ${job.cell_id}`,
    `command:      ${commandLine(job.command.argv)}`,
    `cwd:          ${job.command.cwd}`,
    `status:       ${job.status}`,
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
      } (${formatDuration(usage.cpu_ms)}), ${usage.processes} process(es), log ${formatBytes(usage.log_bytes)}, elapsed ${formatDuration(usage.elapsed_ms)}`
    ]
  }
  if (job.status === "exited" && (job.peak_rss_bytes !== null || job.cpu_ms !== null)) {
    return [`peak:         rss ${job.peak_rss_bytes === null ? "-" : formatBytes(job.peak_rss_bytes)}, cpu time ${job.cpu_ms === null ? "-" : formatDuration(job.cpu_ms)}`]
  }
  return []
}

/** `killed: memory_limit (observed 612 MiB > limit 512 MiB)` for a job a limit ended. */
export const killLine = (job: Job): Array<string> => {
  const name = limitOfReason(job.termination_reason)
  if (name === undefined || job.limit_detail === null) return []
  const { limit, observed } = job.limit_detail
  return [`killed:       ${job.termination_reason} (observed ${formatLimit(name, observed)} > limit ${formatLimit(name, limit)})`]
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

/** The exit code `run --wait` ends with: the job's own, or 128+signal as shells do. */
export const jobExitCode = (job: Job): number => {
  if (job.exit_code !== null) return job.exit_code
  if (job.signal !== null) return 128 + ((os.constants.signals as Record<string, number>)[job.signal] ?? 0)
  return 1
}
