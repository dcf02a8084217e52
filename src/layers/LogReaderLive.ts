import { Clock, Effect, Layer, Option, Schedule } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { JobId } from "../rpc/Ids.js"
import { LogChunk } from "../rpc/Models.js"
import type { LogStream } from "../rpc/Models.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { DaemonFault, InvalidInput } from "../services/DomainErrors.js"
import { JobRegistry } from "../services/JobRegistry.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import type { LogReadRequest } from "../services/LogReader.js"
import { logFileName, LogReader, MARK_INTERVAL_MS, MARK_RECORD_BYTES, marksFileName } from "../services/LogReader.js"
import { fileSize } from "./JobFiles.js"
import { LogGrowth } from "./LogGrowth.js"

/** How often a follower re-checks the file even without a change event (e.g. on file systems without inotify). */
const FALLBACK_POLL_MS = 250

const readAt = (file: string, offset: number, length: number) =>
  Effect.async<Uint8Array, DaemonFault>((resume) => {
    fs.open(file, "r", (openError, fd) => {
      if (openError) {
        return resume(Effect.fail(new DaemonFault({ message: `cannot open ${file}: ${openError.message}` })))
      }
      const buffer = Buffer.allocUnsafe(length)
      fs.read(fd, buffer, 0, length, offset, (readError, bytesRead) => {
        fs.close(fd, () => {})
        if (readError) {
          return resume(Effect.fail(new DaemonFault({ message: `cannot read ${file}: ${readError.message}` })))
        }
        resume(Effect.succeed(new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead)))
      })
    })
  })

/**
 * Resolves on the next change to `file` or after the fallback poll; the
 * watcher is closed when the wait ends or is interrupted (a client that
 * disconnects mid-follow leaves nothing behind).
 */
const nextChange = (file: string, seenSize: number) =>
  Effect.async<void>((resume) => {
    let watcher: fs.FSWatcher | undefined
    const done = () => resume(Effect.void)
    try {
      watcher = fs.watch(file, { persistent: false }, done)
      watcher.on("error", done)
    } catch {
      // No watcher (file missing, no inotify slots): the poll below still wakes us.
    }
    const timer = setTimeout(done, FALLBACK_POLL_MS)
    // Bytes written between the caller's size check and the watch would send no event.
    if (fileSize(file) !== seenSize) done()
    return Effect.sync(() => {
      clearTimeout(timer)
      watcher?.close()
    })
  })

const STREAMS: ReadonlyArray<LogStream> = ["stdout", "stderr"]

/** The last mark of a marks file (its offset), or 0 for none; read once per log, then kept in memory. */
const lastMarkedOffset = (file: string) => {
  try {
    const fd = fs.openSync(file, "r")
    try {
      const size = fs.fstatSync(fd).size
      if (size < MARK_RECORD_BYTES) return 0
      const record = Buffer.alloc(MARK_RECORD_BYTES)
      fs.readSync(fd, record, 0, MARK_RECORD_BYTES, size - (size % MARK_RECORD_BYTES) - MARK_RECORD_BYTES)
      return record.readDoubleLE(0)
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return 0
  }
}

export const make = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const registry = yield* JobRegistry
  const supervisor = yield* JobSupervisor
  const logsDir = statePaths(config.stateDir).logs

  /** Per log (job + stream): the largest size already marked. */
  const marked = new Map<string, number>()

  /**
   * Records that the log was `size` bytes long at `atMs`, when that is more
   * than was marked before. Marking is best effort: a failed append loses
   * precision of `--timestamps`, never bytes.
   */
  const observe = (jobId: JobId, stream: LogStream, size: number, atMs: number) => {
    const key = `${jobId}.${stream}`
    const marksFile = path.join(logsDir, marksFileName(jobId, stream))
    const last = marked.get(key) ?? lastMarkedOffset(marksFile)
    if (size <= last) {
      marked.set(key, last)
      return
    }
    const record = Buffer.allocUnsafe(MARK_RECORD_BYTES)
    record.writeDoubleLE(size, 0)
    record.writeDoubleLE(atMs, 8)
    try {
      fs.appendFileSync(marksFile, record, { mode: 0o600 })
      marked.set(key, size)
    } catch {
      marked.set(key, last)
    }
  }

  /**
   * Samples the logs of every running job that may have grown (LogGrowth); a
   * job gone since the last tick gets a final sample of both logs, then is
   * forgotten.
   */
  const watched = new Map<JobId, ReadonlyArray<readonly [LogStream, LogGrowth]>>()
  const sample = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const running = yield* registry.all
    const current = new Set<JobId>()
    for (const entry of running) {
      const jobId = entry.job.id
      current.add(jobId)
      let logs = watched.get(jobId)
      if (logs === undefined) {
        logs = STREAMS.map((stream) => [stream, new LogGrowth(path.join(logsDir, logFileName(jobId, stream)))] as const)
        watched.set(jobId, logs)
      }
      for (const [stream, log] of logs) {
        if (!log.mayHaveGrown()) continue
        const size = fileSize(log.file)
        if (size > 0) observe(jobId, stream, size, now)
      }
    }
    for (const [jobId, logs] of watched) {
      if (current.has(jobId)) continue
      for (const [stream, log] of logs) {
        log.close()
        const size = fileSize(log.file)
        if (size > 0) observe(jobId, stream, size, now)
        marked.delete(`${jobId}.${stream}`)
      }
      watched.delete(jobId)
    }
  })
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const logs of watched.values()) for (const [, log] of logs) log.close()
      watched.clear()
    })
  )
  yield* sample.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("log marks sample failed", cause)),
    Effect.repeat(Schedule.spaced(MARK_INTERVAL_MS)),
    Effect.forkScoped
  )

  const read = Effect.fn("LogReader.read")(function*(request: LogReadRequest) {
    // Existence check (and UnknownEntity) through the job's record; a running job exists, no query needed.
    if (Option.isNone(registry.get(request.jobId))) yield* supervisor.get(request.jobId)
    const file = path.join(logsDir, logFileName(request.jobId, request.stream))
    const deadline = Date.now() + (request.follow ? request.waitMs : 0)

    for (;;) {
      // Whether the job had finished is read before the size: then every
      // byte it wrote is already counted, and `complete` cannot come early.
      const finished = Option.isNone(registry.get(request.jobId))
      const size = fileSize(file)
      if (request.offset > size && finished) {
        // A log-quota kill cuts the logs back to the quota once the tree is gone (truncateToQuota), after a
        // follower may have read past it: the end of what it could read, not a bad offset.
        if ((yield* supervisor.get(request.jobId)).termination_reason === "log_quota") {
          return new LogChunk({ data: new Uint8Array(0), offset: request.offset, eof: true, complete: true })
        }
        return yield* new InvalidInput({
          message: `offset ${request.offset} is past the end of the ${request.stream} log (${size} bytes)`
        })
      }
      if (!finished && size > 0) observe(request.jobId, request.stream, size, Date.now())
      if (size > request.offset) {
        const data = yield* readAt(file, request.offset, Math.min(request.maxBytes, size - request.offset))
        const next = request.offset + data.length
        return new LogChunk({ data, offset: next, eof: next >= size, complete: finished && next >= size })
      }
      const remaining = deadline - Date.now()
      if (finished || remaining <= 0) {
        return new LogChunk({ data: new Uint8Array(0), offset: request.offset, eof: true, complete: finished })
      }
      yield* Effect.raceFirst(nextChange(file, size), registry.awaitEnded(request.jobId)).pipe(
        Effect.timeout(remaining),
        Effect.ignore
      )
    }
  })

  const open = Effect.fn("LogReader.open")(function*(jobId: JobId, stream: LogStream) {
    yield* supervisor.get(jobId)
    const file = path.join(logsDir, logFileName(jobId, stream))
    // As in read: finished first, so `complete` never comes before the last byte is counted.
    const finished = Option.isNone(registry.get(jobId))
    const fd = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          try {
            return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOENT") return null
            throw error
          }
        },
        catch: (error) =>
          new DaemonFault({ message: `cannot open ${file}: ${error instanceof Error ? error.message : String(error)}` })
      }),
      (fd) => Effect.sync(() => fd !== null && fs.closeSync(fd))
    )
    const size = fd === null ? 0 : fs.fstatSync(fd).size
    return { fd, size, complete: finished }
  })

  const marks = Effect.fn("LogReader.marks")(
    function*(jobId: JobId, stream: LogStream, afterOffset: number | null, limit: number) {
      const job = yield* supervisor.get(jobId)
      const file = path.join(logsDir, marksFileName(jobId, stream))
      const bytes = yield* Effect.try({
        try: () => {
          try {
            return fs.readFileSync(file)
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0)
            throw error
          }
        },
        catch: (error) =>
          new DaemonFault({ message: `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}` })
      })
      const found: Array<readonly [number, number]> = []
      let more = false
      for (let at = 0; at + MARK_RECORD_BYTES <= bytes.length; at += MARK_RECORD_BYTES) {
        const offset = bytes.readDoubleLE(at)
        if (afterOffset !== null && offset <= afterOffset) continue
        if (found.length === limit) {
          more = true
          break
        }
        found.push([offset, bytes.readDoubleLE(at + 8)])
      }
      return { marks: found, startedAtMs: job.started_at_ms, more }
    }
  )

  return LogReader.of({ read, open, marks })
})

export const layer = Layer.scoped(LogReader, make)
