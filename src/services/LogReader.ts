import { Context } from "effect"
import type { Effect, Scope } from "effect"
import type { JobId } from "../rpc/Ids.js"
import type { LogChunk, LogStream } from "../rpc/Models.js"
import type { DaemonFault, InvalidInput, UnknownEntity } from "./DomainErrors.js"
import type { StateError } from "./StateRepository.js"

/**
 * A read already held to LogsReadPayload's rules where the request was
 * decoded: `offset` a whole number of bytes, `maxBytes` 1 to
 * MAX_LOG_CHUNK_BYTES, `waitMs` 0 to MAX_FOLLOW_WAIT_MS. Only an offset past
 * the end of the log, which needs the file, is checked here.
 */
export interface LogReadRequest {
  readonly jobId: JobId
  readonly stream: LogStream
  readonly offset: number
  readonly maxBytes: number
  /** Wait up to `waitMs` for bytes past `offset` (or for the job to finish) when there are none yet. */
  readonly follow: boolean
  readonly waitMs: number
}

/** A job's log opened read-only for a caller; the descriptor is closed with the scope. */
export interface OpenedLog {
  /** Null when the job has written nothing to this stream yet (no file). */
  readonly fd: number | null
  readonly size: number
  /** The job had finished before `size` was read: the file will not grow. */
  readonly complete: boolean
}

export interface LogMarks {
  /** [offset, at_ms]: at `at_ms` the daemon saw the log `offset` bytes long; offsets increasing. */
  readonly marks: ReadonlyArray<readonly [number, number]>
  readonly startedAtMs: number
  readonly more: boolean
}

/**
 * Bounded reads of a job's log files by offset; followers are woken by file
 * changes. The daemon never sees a job's writes (they go straight to the
 * file), so it records when it saw each log grow: sampled while the job
 * runs, and at every growth a reader notices.
 */
export interface LogReaderShape {
  readonly read: (
    request: LogReadRequest
  ) => Effect.Effect<LogChunk, InvalidInput | UnknownEntity | DaemonFault | StateError>
  readonly open: (
    jobId: JobId,
    stream: LogStream
  ) => Effect.Effect<OpenedLog, UnknownEntity | DaemonFault | StateError, Scope.Scope>
  readonly marks: (
    jobId: JobId,
    stream: LogStream,
    afterOffset: number | null,
    limit: number
  ) => Effect.Effect<LogMarks, UnknownEntity | DaemonFault | StateError>
}

export class LogReader extends Context.Tag("planter/LogReader")<LogReader, LogReaderShape>() {}

export const logFileName = (jobId: string, stream: LogStream) => `${jobId}.${stream}.log`

/** The sidecar file of a log's (offset, time) marks: 16-byte records, two little-endian float64s. */
export const marksFileName = (jobId: string, stream: LogStream) => `${jobId}.${stream}.marks`

export const MARK_RECORD_BYTES = 16

/** How often the daemon samples the size of every running job's logs. */
export const MARK_INTERVAL_MS = 250
