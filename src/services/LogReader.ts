import { Context } from "effect"
import type { Effect } from "effect"
import type { DaemonFault, InvalidInput, UnknownEntity } from "./DomainErrors.js"
import type { StateError } from "./StateRepository.js"
import type { JobId } from "../rpc/Ids.js"
import type { LogChunk, LogStream } from "../rpc/Models.js"

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

/** Bounded reads of a job's log files by offset; followers are woken by file changes. */
export interface LogReaderShape {
  readonly read: (request: LogReadRequest) => Effect.Effect<LogChunk, InvalidInput | UnknownEntity | DaemonFault | StateError>
}

export class LogReader extends Context.Tag("planter/LogReader")<LogReader, LogReaderShape>() {}

export const logFileName = (jobId: string, stream: LogStream) => `${jobId}.${stream}.log`
