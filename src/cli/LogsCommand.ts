import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import type { Scope } from "effect"
import * as fs from "node:fs"
import type { PlanterClientShape } from "../rpc/client.js"
import * as FileCopy from "../rpc/FileCopy.js"
import { openLogFile } from "../rpc/LogFiles.js"
import type { LogMarksPage } from "../rpc/LogModels.js"
import type { LogStream } from "../rpc/Models.js"
import { MAX_LOG_CHUNK_BYTES, MAX_LOG_MARKS_PAGE } from "../rpc/Rpcs.js"
import { parseDuration } from "../services/Limits.js"
import { withClient } from "./Global.js"
import {
  formatStamp,
  jsonBytes,
  type Line,
  lineStart,
  type Mark,
  parseSince,
  seenAt,
  sinceOffset,
  splitLines,
  tailStart
} from "./LogLines.js"
import { endNote, jobExitCode, printJson, usageError, write } from "./Output.js"

const FOLLOW_WAIT_MS = 30_000

/** Reads from a log descriptor go in blocks this large, into one reused buffer. */
const COPY_BLOCK_BYTES = 4 * 1024 * 1024

/**
 * Copies a job's log from `offset` to `sink`. Following, it long-polls the
 * daemon (which answers as soon as bytes arrive) until the job has finished
 * and everything is read; when an answer says more is already on disk than
 * it carried (a fast writer), `catchUp` (if given) copies up to the end
 * another way and answers the offset reached.
 */
export const copyLog = <E = never>(
  client: PlanterClientShape,
  jobId: string,
  stream: LogStream,
  offset: number,
  follow: boolean,
  sink: (data: Uint8Array) => Effect.Effect<void>,
  catchUp?: (offset: number, sink: (data: Uint8Array) => Effect.Effect<void>) => Effect.Effect<number, E>
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
      if (!chunk.eof && catchUp !== undefined) next = yield* catchUp(next, sink)
    }
  })

/**
 * stdout is a regular file (`planter logs JOB > file`): write to it synchronously, no stream machinery.
 * Asked on first use, not at module load: a snapshot-started CLI loaded its modules at build time.
 */
let stdoutIsFileCache: boolean | undefined
const stdoutIsFile = (): boolean => {
  if (stdoutIsFileCache === undefined) {
    try {
      stdoutIsFileCache = fs.fstatSync(1).isFile()
    } catch {
      stdoutIsFileCache = false
    }
  }
  return stdoutIsFileCache
}

/** Writes to stdout and waits until it took the bytes (so a reused buffer may be refilled). */
const writeOut = (data: Uint8Array): Effect.Effect<void> => {
  if (!stdoutIsFile()) return write(process.stdout, data)
  return Effect.sync(() => {
    let done = 0
    while (done < data.length) done += fs.writeSync(1, data, done, data.length - done)
  })
}

/**
 * A log as the CLI reads it: through a descriptor the daemon handed over
 * (LogsOpen; the bytes never go through the RPC connection), or, where that
 * is not possible, through LogsRead chunks.
 */
interface LogSource {
  readonly stream: LogStream
  /** Reads [offset, offset + length) as far as it exists. */
  readonly readAt: (offset: number, length: number) => Effect.Effect<Uint8Array, unknown>
  /** The current size, when the source can tell without reading (a descriptor). */
  readonly size: () => number | null
  /** Writes everything from `offset` to the current end to `sink`; answers the next offset. */
  readonly copyToEnd: (
    offset: number,
    sink: (data: Uint8Array) => Effect.Effect<void>
  ) => Effect.Effect<number, unknown>
}

/**
 * Everything from `offset` to the current end onto stdout: in the kernel
 * when both are regular files (copy_file_range, as `cat` does), else
 * through the source's reused buffer.
 */
const copyToStdout = (source: LogSource & { readonly fd?: number | null }, offset: number) =>
  Effect.gen(function*() {
    if (stdoutIsFile() && typeof source.fd === "number") {
      const fd = source.fd
      const reached = yield* Effect.promise(() => FileCopy.copyToEnd(fd, offset, 1))
      if (reached !== null) return reached
    }
    return yield* source.copyToEnd(offset, writeOut)
  })

const fdSource = (stream: LogStream, fd: number | null): LogSource & { readonly fd: number | null } => {
  const buffer = Buffer.allocUnsafe(COPY_BLOCK_BYTES)
  const readAtSync = (offset: number, length: number) => {
    if (fd === null) return new Uint8Array(0)
    const out = Buffer.allocUnsafe(length)
    let done = 0
    while (done < length) {
      const n = fs.readSync(fd, out, done, length - done, offset + done)
      if (n === 0) break
      done += n
    }
    return out.subarray(0, done)
  }
  return {
    stream,
    fd,
    readAt: (offset, length) => Effect.sync(() => readAtSync(offset, length)),
    size: () => (fd === null ? 0 : fs.fstatSync(fd).size),
    copyToEnd: (offset, sink) =>
      Effect.gen(function*() {
        if (fd === null) return offset
        let next = offset
        for (;;) {
          const n = fs.readSync(fd, buffer, 0, buffer.length, next)
          if (n === 0) return next
          yield* sink(buffer.subarray(0, n))
          next += n
        }
      })
  }
}

const rpcSource = (client: PlanterClientShape, jobId: string, stream: LogStream): LogSource => ({
  stream,
  readAt: (offset, length) =>
    Effect.gen(function*() {
      const parts: Array<Uint8Array> = []
      let next = offset
      let left = length
      while (left > 0) {
        const chunk = yield* client.LogsRead({
          job_id: jobId,
          stream,
          offset: next,
          max_bytes: Math.min(left, MAX_LOG_CHUNK_BYTES),
          follow: false,
          wait_ms: 0
        })
        if (chunk.data.length === 0) break
        parts.push(chunk.data)
        next = chunk.offset
        left -= chunk.data.length
      }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
    }),
  size: () => null,
  copyToEnd: (offset, sink) => Effect.map(copyLog(client, jobId, stream, offset, false, sink), (end) => end.offset)
})

/** The fastest source this client can have for the log: a handed-over descriptor, else LogsRead. Scoped. */
const openSource = (
  client: PlanterClientShape,
  jobId: string,
  stream: LogStream
): Effect.Effect<LogSource & { readonly fd?: number | null }, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const opened = yield* openLogFile(client, { job_id: jobId, stream }).pipe(
      // The daemon could not reach our reply socket (e.g. another network namespace): chunks will do.
      // Any other refusal (no such job, not allowed) comes again, the same, from LogsRead.
      Effect.catchTag("InvalidRequest", () => Effect.succeed(null))
    )
    return opened === null ? rpcSource(client, jobId, stream) : fdSource(stream, opened.fd)
  })

/** Everything from `offset` to the current end, in memory (for the line-oriented flags). */
const readToEnd = (source: LogSource, offset: number) =>
  Effect.gen(function*() {
    const parts: Array<Uint8Array> = []
    const end = yield* source.copyToEnd(offset, (data) => Effect.sync(() => parts.push(Buffer.from(data))))
    return { bytes: Buffer.concat(parts), end }
  })

const allMarks = (client: PlanterClientShape, jobId: string, stream: LogStream) =>
  Effect.gen(function*() {
    const marks: Array<Mark> = []
    let after: number | null = null
    for (;;) {
      const page: LogMarksPage = yield* client.LogsMarks({
        job_id: jobId,
        stream,
        after_offset: after,
        limit: MAX_LOG_MARKS_PAGE
      })
      for (const mark of page.marks) marks.push(mark)
      if (!page.more || page.marks.length === 0) return marks
      after = page.marks[page.marks.length - 1]![0]
    }
  })

/**
 * Follows `stream` from `offset` until the job has finished, handing each arrival to `sink`; a backlog is
 * caught up through the log's descriptor.
 */
const follow = (
  client: PlanterClientShape,
  jobId: string,
  source: LogSource,
  offset: number,
  sink: (data: Uint8Array) => Effect.Effect<void>
) => Effect.map(copyLog(client, jobId, source.stream, offset, true, sink, source.copyToEnd), (end) => end.offset)

interface TimedLine extends Line {
  readonly stream: LogStream
  readonly atMs: number | null
}

/** One write per batch, so that lines of two streams followed at once never mix inside a line. */
const printLines = (lines: ReadonlyArray<TimedLine>, timestamps: boolean) => {
  const parts: Array<Uint8Array> = []
  for (const line of lines) {
    if (timestamps) parts.push(Buffer.from(`${line.atMs === null ? "-" : formatStamp(line.atMs)} `))
    parts.push(line.bytes)
    // A partial last line still ends its printed line, so the next one starts clean.
    if (!line.complete && timestamps) parts.push(Buffer.from("\n"))
  }
  return parts.length === 0 ? Effect.void : writeOut(Buffer.concat(parts))
}

const jsonLine = (line: TimedLine) => ({
  stream: line.stream,
  offset: line.start,
  at_ms: line.atMs,
  ...jsonBytes(line.bytes)
})

export const logs = Command.make("logs", {
  job: Args.text({ name: "JOB" }),
  follow: Options.boolean("follow").pipe(
    Options.withAlias("f"),
    Options.withDescription(
      "keep reading until the job has finished, then exit with the job's exit code (128+N if a signal N killed it)"
    )
  ),
  stderr: Options.boolean("stderr").pipe(Options.withDescription("read stderr instead of stdout")),
  all: Options.boolean("all").pipe(
    Options.withDescription("stdout and stderr together, lines in the order the daemon saw them arrive")
  ),
  offset: Options.integer("offset").pipe(Options.withDescription("start at this byte"), Options.withDefault(0)),
  tail: Options.integer("tail").pipe(
    Options.withDescription("only the last N lines (of each stream with --all)"),
    Options.optional
  ),
  since: Options.text("since").pipe(
    Options.withDescription(
      "only lines written since: a duration back from now (10m, 2h) or a time (2026-11-25T14:00:00Z)"
    ),
    Options.optional
  ),
  timestamps: Options.boolean("timestamps").pipe(
    Options.withAlias("t"),
    Options.withDescription("prefix each line with when the daemon saw it (sampled every 250 ms; see README)")
  )
}, (options) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      if (options.offset < 0) return yield* usageError(`--offset ${options.offset}: give 0 or more bytes`)
      if (options.all && options.stderr) {
        return yield* usageError("--all already includes stderr: give --all or --stderr, not both")
      }
      const tail = Option.getOrNull(options.tail)
      if (tail !== null && tail < 0) return yield* usageError(`--tail ${tail}: give 0 or more lines`)
      const sinceText = Option.getOrNull(options.since)
      const sinceMs = sinceText === null ? null : parseSince(sinceText, Date.now(), parseDuration)
      if (typeof sinceMs === "string") return yield* usageError(`--since ${sinceMs}`)
      if (options.offset > 0 && (tail !== null || sinceMs !== null || options.all)) {
        return yield* usageError(
          "--offset is a byte position in one stream: it cannot be combined with --tail, --since or --all"
        )
      }
      const jobId = options.job
      const streams: ReadonlyArray<LogStream> = options.all
        ? ["stdout", "stderr"]
        : [options.stderr ? "stderr" : "stdout"]
      const lineMode = options.all || options.timestamps || tail !== null || sinceMs !== null

      const exitCode = Effect.gen(function*() {
        if (!options.follow) return 0
        const status = yield* client.JobStatus({ job_id: jobId })
        // As `run --wait`: a job that did not end on its own is said so, its exit code alone would not tell why.
        const note = json ? undefined : endNote(status)
        if (note !== undefined) yield* write(process.stderr, `planter: ${note}\n`)
        return jobExitCode(status)
      })

      // The plain case, at disk speed: the bytes from `offset`, then (following) whatever arrives.
      if (!lineMode) {
        const stream = streams[0]!
        const source = yield* openSource(client, jobId, stream)
        const size = source.size()
        if (size !== null && options.offset > size) {
          // An offset past the end: LogsRead refuses it (or waits for it, following) in the daemon's own words.
          yield* client.LogsRead({
            job_id: jobId,
            stream,
            offset: options.offset,
            max_bytes: 1,
            follow: false,
            wait_ms: 0
          })
        }
        if (!json) {
          const next = yield* copyToStdout(source, options.offset)
          if (options.follow) yield* follow(client, jobId, source, next, writeOut)
          const code = yield* exitCode
          return code
        }
        const parts: Array<Uint8Array> = []
        const collect = (data: Uint8Array) => Effect.sync(() => parts.push(Buffer.from(data)))
        let next = yield* source.copyToEnd(options.offset, collect)
        if (options.follow) next = yield* follow(client, jobId, source, next, collect)
        const status = yield* client.JobStatus({ job_id: jobId })
        yield* printJson({
          job_id: jobId,
          stream,
          offset: options.offset,
          next_offset: next,
          complete: status.status === "exited" && (options.follow || next >= (source.size() ?? next)),
          ...(options.follow ? { exit_code: jobExitCode(status) } : {}),
          ...jsonBytes(Buffer.concat(parts))
        })
        return yield* exitCode
      }

      // Line mode: each stream from where the flags say, split into lines, each line timed by the daemon's marks.
      // Bytes no mark covers were written before the job ended (or before now, while it runs).
      const record = yield* client.JobStatus({ job_id: jobId })
      const perStream = yield* Effect.forEach(streams, (stream) =>
        Effect.gen(function*() {
          const source = yield* openSource(client, jobId, stream)
          if (sinceMs !== null && record.finished_at_ms !== null && record.finished_at_ms < sinceMs) {
            // It finished before that time: nothing of it was written since.
            const end = source.size() ?? (yield* readToEnd(source, 0)).end
            return { stream, source, lines: [] as Array<TimedLine>, end }
          }
          const needMarks = options.timestamps || options.all || sinceMs !== null
          const marks = needMarks ? yield* allMarks(client, jobId, stream) : []
          let start = options.offset
          let whole: { bytes: Uint8Array; end: number } | null = null
          if (sinceMs !== null) {
            const from = sinceOffset(marks, sinceMs)
            start = from === 0 ? 0 : yield* lineStartOf(source, from)
          }
          if (tail !== null) {
            const size = source.size()
            if (size !== null) {
              const readSync = (offset: number, length: number) =>
                Effect.runSync(Effect.orDie(source.readAt(offset, length)))
              start = Math.max(start, tailStart(size, tail, readSync))
            } else {
              // No descriptor: read it all, then keep the end.
              whole = yield* readToEnd(source, start)
              const bytes = whole.bytes
              const cut = tailStart(bytes.length, tail, (offset, length) => bytes.subarray(offset, offset + length))
              whole = { bytes: bytes.subarray(cut), end: whole.end }
              start += cut
            }
          }
          const read = whole ?? (yield* readToEnd(source, start))
          const readAtMs = record.finished_at_ms ?? Date.now()
          const lines: Array<TimedLine> = splitLines(read.bytes, start).map((line) => ({
            ...line,
            stream,
            atMs: needMarks ? seenAt(marks, line.start + line.bytes.length) ?? readAtMs : null
          }))
          return { stream, source, lines, end: read.end }
        }))

      // Interleaved by the time each line was seen; within one sample, stdout's lines first (the order is unknown there).
      const merged = perStream.flatMap((entry) => entry.lines).sort((a, b) =>
        a.atMs === b.atMs ? 0 : (a.atMs ?? Infinity) - (b.atMs ?? Infinity)
      )
      const collected: Array<TimedLine> = []
      const emit = (lines: ReadonlyArray<TimedLine>) =>
        json
          ? Effect.sync(() => {
            for (const line of lines) collected.push(line)
          })
          : printLines(lines, options.timestamps)
      yield* emit(options.all ? merged : perStream[0]!.lines)

      const ends: Record<string, number> = {}
      for (const entry of perStream) ends[entry.stream] = entry.end
      if (options.follow) {
        // Each stream followed on its own; lines are printed whole as they arrive, so the streams never mix inside a line.
        yield* Effect.forEach(perStream, (entry) =>
          Effect.gen(function*() {
            let pending: Buffer = Buffer.alloc(0)
            let pendingStart = entry.end
            // A partial last line already printed is not printed again: its rest comes as its own piece.
            const sink = (data: Uint8Array) =>
              Effect.gen(function*() {
                if (data.length === 0) return
                const atMs = Date.now()
                const bytes = pending.length === 0 ? Buffer.from(data) : Buffer.concat([pending, data])
                const lines = splitLines(bytes, pendingStart)
                const last = lines[lines.length - 1]
                const whole = last !== undefined && !last.complete ? lines.slice(0, -1) : lines
                pending = last !== undefined && !last.complete ? Buffer.from(last.bytes) : Buffer.alloc(0)
                pendingStart = last !== undefined && !last.complete ? last.start : pendingStart + bytes.length
                yield* emit(
                  whole.map((line) => ({
                    ...line,
                    stream: entry.stream,
                    atMs: options.timestamps || options.all ? atMs : null
                  }))
                )
              })
            ends[entry.stream] = yield* follow(client, jobId, entry.source, entry.end, sink)
            if (pending.length > 0) {
              yield* emit([{
                start: pendingStart,
                bytes: pending,
                complete: false,
                stream: entry.stream,
                atMs: Date.now()
              }])
            }
          }), { concurrency: "unbounded", discard: true })
      }
      if (json) {
        const status = yield* client.JobStatus({ job_id: jobId })
        yield* printJson({
          job_id: jobId,
          streams,
          next_offset: ends,
          complete: status.status === "exited",
          ...(options.follow ? { exit_code: jobExitCode(status) } : {}),
          lines: collected.map(jsonLine)
        })
      }
      return yield* exitCode
    }).pipe(Effect.scoped)
  )).pipe(
    Command.withDescription(
      "Print a job's output: planter logs JOB [-f] [--stderr | --all] [--tail N] [--since 10m] [--timestamps] [--offset N]"
    )
  )

const lineStartOf = (source: LogSource, offset: number) =>
  Effect.gen(function*() {
    // Whole lines: back up to the start of the line holding `offset`, reading a block at a time.
    const blocks = new Map<number, Uint8Array>()
    for (let end = offset; end > 0;) {
      const start = Math.max(0, end - 4096)
      blocks.set(start, yield* source.readAt(start, end - start))
      const found = lineStart(offset, (at) => blocks.get(at) ?? new Uint8Array(0))
      if (found > start || start === 0) return found
      end = start
    }
    return 0
  })
