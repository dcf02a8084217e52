import { Context } from "effect"
import type { Effect } from "effect"
import type { Internal, InvalidRequest, NotFound } from "../rpc/Errors.js"
import type { JobId } from "../rpc/Ids.js"
import type { LogChunk, LogStream } from "../rpc/Models.js"

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
  readonly read: (request: LogReadRequest) => Effect.Effect<LogChunk, InvalidRequest | NotFound | Internal>
}

export class LogReader extends Context.Tag("planter/LogReader")<LogReader, LogReaderShape>() {}

export const logFileName = (jobId: string, stream: LogStream) => `${jobId}.${stream}.log`
