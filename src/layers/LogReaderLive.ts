import { Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { DaemonFault, InvalidInput } from "../services/DomainErrors.js"
import { LogChunk } from "../rpc/Models.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { JobRegistry } from "../services/JobRegistry.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import type { LogReadRequest } from "../services/LogReader.js"
import { logFileName, LogReader } from "../services/LogReader.js"

/** How often a follower re-checks the file even without a change event (e.g. on file systems without inotify). */
const FALLBACK_POLL_MS = 250

const fileSize = (file: string) => {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

const readAt = (file: string, offset: number, length: number) =>
  Effect.async<Uint8Array, DaemonFault>((resume) => {
    fs.open(file, "r", (openError, fd) => {
      if (openError) return resume(Effect.fail(new DaemonFault({ message: `cannot open ${file}: ${openError.message}` })))
      const buffer = Buffer.allocUnsafe(length)
      fs.read(fd, buffer, 0, length, offset, (readError, bytesRead) => {
        fs.close(fd, () => {})
        if (readError) return resume(Effect.fail(new DaemonFault({ message: `cannot read ${file}: ${readError.message}` })))
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

export const make = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const registry = yield* JobRegistry
  const supervisor = yield* JobSupervisor
  const logsDir = statePaths(config.stateDir).logs

  const read = Effect.fn("LogReader.read")(function*(request: LogReadRequest) {
    // Existence check (and UnknownEntity) through the job's record.
    yield* supervisor.get(request.jobId)
    const file = path.join(logsDir, logFileName(request.jobId, request.stream))
    const deadline = Date.now() + (request.follow ? request.waitMs : 0)

    for (;;) {
      // Whether the job had finished is read before the size: then every
      // byte it wrote is already counted, and `complete` cannot come early.
      const finished = Option.isNone(registry.get(request.jobId))
      const size = fileSize(file)
      if (request.offset > size && finished) {
        return yield* new InvalidInput({ message: `offset ${request.offset} is past the end of the ${request.stream} log (${size} bytes)` })
      }
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

  return LogReader.of({ read })
})

export const layer = Layer.effect(LogReader, make)
