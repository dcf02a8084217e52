import { Schema } from "effect"

/** The answer to LogsOpen: the descriptor went to the caller's socket (or not: the log does not exist yet). */
export class LogFileInfo extends Schema.Class<LogFileInfo>("LogFileInfo")({
  /** A descriptor was sent; false when the job has written nothing to this stream yet (no file: read it as empty). */
  sent: Schema.Boolean,
  /** The log's size when it was opened. */
  size: Schema.Number,
  /** The job had finished before that size was read: the file will not grow. */
  complete: Schema.Boolean
}) {}

/**
 * (offset, time) marks: at `at_ms` (ms since the epoch) the daemon saw the
 * log `offset` bytes long. Bytes before a mark's offset were written at or
 * before its time; the daemon cannot see individual writes (the job writes
 * to the file directly), so this is the finest time it can give.
 */
export class LogMarksPage extends Schema.Class<LogMarksPage>("LogMarksPage")({
  /** [offset, at_ms] pairs, offsets increasing. */
  marks: Schema.Array(Schema.Tuple(Schema.Number, Schema.Number)),
  /** The job's start (offset 0 was seen then). */
  started_at_ms: Schema.Number,
  /** More marks past the last one: ask again with `after_offset` set to its offset. */
  more: Schema.Boolean
}) {}
