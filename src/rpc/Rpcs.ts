import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { Schema } from "effect"
import {
  Conflict,
  Internal,
  InvalidRequest,
  LimitInvalid,
  NotFound,
  SandboxUnavailable,
  Unauthorized
} from "./Errors.js"
import { LogFileInfo, LogMarksPage } from "./LogModels.js"
import { CallerMiddleware } from "./Middleware.js"
import {
  Cell,
  CellInfo,
  CellPage,
  Env,
  FiberInfo,
  HealthInfo,
  Job,
  JobLabels,
  JobName,
  JobPage,
  JobStatus as JobStatusLiteral,
  JournalEntry,
  JournalPage,
  LogChunk,
  LogStream,
  NetworkPolicy,
  OsString,
  PruneResult,
  VersionInfo
} from "./Models.js"
import { expected, expectedShape } from "./RequestValidation.js"

/** Bumped on any incompatible change to the RPCs below; the client refuses a daemon that speaks another. */
export const PROTOCOL_VERSION = 6

/** The largest chunk one LogsRead may ask for; larger requests are refused, not truncated silently. */
export const MAX_LOG_CHUNK_BYTES = 4 * 1024 * 1024

/** The longest a LogsRead follow may wait for new bytes before answering with what it has. */
export const MAX_FOLLOW_WAIT_MS = 60_000

/** The most journal rows one EventsList answers; the client pages with `after_id` for more. */
export const MAX_EVENTS_PAGE = 1000

/** The most jobs or cells one JobList or CellList answers; the client pages with `after` for more. */
export const MAX_LIST_PAGE = 1000

/** The page size of JobList and CellList when the request gives no `limit`. */
export const DEFAULT_LIST_PAGE = 50

/**
 * Ids travel as plain strings and are validated by the daemon (Handlers'
 * parseJobId, Cells.resolve), so a malformed id gets an `invalid_request`
 * that says what an id looks like, quoting it.
 */
const JobIdString = Schema.String.annotations(expected("a job id (job-…) or name"))
const CellIdString = Schema.String.annotations(expected("a cell id (cell-…) or name"))

const Flag = Schema.Boolean.annotations(expected("true or false"))

/** A whole number in [min, max]: NaN, fractions, infinities and numbers sent as text are all refused. */
const wholeNumber = (what: string, min: number, max: number) =>
  Schema.Number.pipe(
    Schema.filter((n) => Number.isSafeInteger(n) && n >= min && n <= max),
    Schema.annotations(expected(what))
  )

/**
 * Limits as a request carries them: each a number or null (none / inherit).
 * Whether a number is a usable limit (a positive whole number, no looser
 * than the cell's) is the daemon's to decide, answering `limit_invalid`.
 */
const LimitField = Schema.optional(Schema.NullOr(Schema.Number.annotations(expected("a number (ms or bytes) or null"))))
const LimitsPayload = Schema.NullOr(
  Schema.Struct({ timeout_ms: LimitField, max_rss_bytes: LimitField, max_log_bytes: LimitField }).annotations(
    expectedShape("an object with the fields timeout_ms, max_rss_bytes, max_log_bytes")
  )
)

/** A payload: a struct that says which fields it wants when it is sent something else. */
const payload = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields).annotations(expectedShape(`an object with the fields ${Object.keys(fields).join(", ")}`))

/*
 * The strict payload of each RPC: the types scripts get from the client, and
 * the rules the daemon holds every request to (RequestValidation decodes
 * each payload with these, naming the field that breaks one). Each rule
 * lives here once; the services keep only what needs their state (a cell
 * name that is taken, a path that does not exist, an offset past a log's end).
 */

export const CellCreatePayload = payload({
  name: Schema.String.annotations(expected("a cell name")),
  env: Env,
  read_paths: Schema.Array(OsString).annotations(expectedShape("an array of absolute paths")),
  network: NetworkPolicy,
  /** Default limits of the cell's jobs (absent or null: none). */
  limits: Schema.optional(LimitsPayload)
})

export const CellRemovePayload = payload({ cell_id: CellIdString, force: Flag })

export const JobRunPayload = payload({
  cell_id: CellIdString,
  argv: Schema.Array(OsString).annotations(expectedShape("an array of strings: the program and its arguments")).pipe(
    Schema.filter((argv): argv is readonly [string, ...Array<string>] => argv.length > 0, {
      message: () => "nothing to run: give the program and its arguments, e.g. [\"echo\", \"hi\"]"
    }),
    Schema.filter((argv) => argv[0] !== "" || { path: [0], message: "the program is empty: give its name or path" })
  ),
  env: Env,
  cwd: Schema.NullOr(Schema.String).annotations(expected("a directory in the cell, or null")).pipe(
    Schema.filter((cwd) => cwd === null || !cwd.includes("\u0000"), {
      message: () => "must not contain null bytes (\\0): the OS cannot pass them"
    })
  ),
  network: Schema.NullOr(NetworkPolicy).annotations(expected("\"allow\", \"deny\" or null (the cell's policy)")),
  /** The job's limits, tightening its cell's (absent, null or a null field: the cell's). */
  limits: Schema.optional(LimitsPayload),
  /** Its name, unique among the running jobs of the cell (absent or null: none). */
  name: Schema.optional(Schema.NullOr(JobName)),
  labels: Schema.optional(JobLabels),
  /** Give the job a pipe as its stdin, written with JobStdin (absent or false: /dev/null). */
  stdin: Schema.optional(Flag)
})

export const JobStatusPayload = payload({ job_id: JobIdString })

/** A page size: absent means DEFAULT_LIST_PAGE. */
const PageLimit = Schema.optional(wholeNumber(`a whole number from 1 to ${MAX_LIST_PAGE}`, 1, MAX_LIST_PAGE))

/** Where the previous page ended (its `next`); absent or null: the first page. */
const PageCursor = Schema.optional(
  Schema.NullOr(
    Schema.String.annotations(expected("a cursor (the `next` of the previous page), or null for the first page"))
  )
)

const JobStatusFilter = JobStatusLiteral.annotations(expected("\"starting\", \"running\" or \"exited\""))

/**
 * Every field is optional: `{}` asks for the newest DEFAULT_LIST_PAGE jobs.
 * Filters combine (all must hold); times are the job's `started_at_ms`.
 */
export const JobListPayload = payload({
  cell_id: Schema.optional(
    Schema.NullOr(Schema.String).annotations(expected("a cell id (cell-…) or name, or null for every cell"))
  ),
  /** One status, several (any of them), or null for all. */
  status: Schema.optional(
    Schema.NullOr(Schema.Union(JobStatusFilter, Schema.Array(JobStatusFilter))).annotations(
      expected("a job status (\"starting\", \"running\", \"exited\"), an array of them, or null")
    )
  ),
  /** Only jobs started at or after this time (ms since the epoch). */
  since_ms: Schema.optional(
    Schema.NullOr(wholeNumber("a time in ms since the epoch, or null", 0, Number.MAX_SAFE_INTEGER))
  ),
  /** Only jobs started before this time (ms since the epoch). */
  until_ms: Schema.optional(
    Schema.NullOr(wholeNumber("a time in ms since the epoch, or null", 0, Number.MAX_SAFE_INTEGER))
  ),
  after: PageCursor,
  limit: PageLimit,
  /** Only jobs with this name (absent or null: any). */
  name: Schema.optional(Schema.NullOr(Schema.String.annotations(expected("a job name, or null")))),
  /** Only jobs carrying every one of these labels (absent: any). */
  labels: Schema.optional(
    Schema.Record({ key: Schema.String, value: Schema.String }).annotations(
      expectedShape("an object of label: \"value\" pairs")
    )
  )
})

/** `{}` asks for the first DEFAULT_LIST_PAGE cells, oldest first. */
export const CellListPayload = payload({ after: PageCursor, limit: PageLimit })

export const JobKillPayload = payload({ job_id: JobIdString, force: Flag })

/** The most bytes one JobStdin carries. */
export const MAX_STDIN_CHUNK_BYTES = 1024 * 1024

export const JobStdinPayload = payload({
  job_id: JobIdString,
  data: Schema.Uint8ArrayFromSelf.annotations(expected("binary data")).pipe(
    Schema.filter((data) => data.length <= MAX_STDIN_CHUNK_BYTES || `at most ${MAX_STDIN_CHUNK_BYTES} bytes per call`)
  ),
  /** Close the job's stdin after these bytes. */
  eof: Flag
})

export const JobRemovePayload = payload({ job_id: JobIdString })

export const JobPrunePayload = payload({
  /** Remove finished jobs that ended at least this long ago (ms). */
  older_than_ms: wholeNumber("a whole number of milliseconds, 0 or more", 0, Number.MAX_SAFE_INTEGER),
  cell_id: Schema.NullOr(Schema.String).annotations(expected("a cell id (cell-…) or name, or null for every cell"))
})

export const CellShowPayload = payload({ cell_id: CellIdString })

export const LogsReadPayload = payload({
  job_id: JobIdString,
  stream: LogStream,
  offset: wholeNumber("a whole number of bytes, 0 or more", 0, Number.MAX_SAFE_INTEGER),
  max_bytes: wholeNumber(`a whole number of bytes from 1 to ${MAX_LOG_CHUNK_BYTES}`, 1, MAX_LOG_CHUNK_BYTES),
  follow: Flag,
  wait_ms: wholeNumber(`a whole number of milliseconds from 0 to ${MAX_FOLLOW_WAIT_MS}`, 0, MAX_FOLLOW_WAIT_MS)
})

/** The most (offset, time) marks one LogsMarks answers; the client pages with `after_offset` for more. */
export const MAX_LOG_MARKS_PAGE = 50_000

export const LogsOpenPayload = payload({
  job_id: JobIdString,
  stream: LogStream,
  /**
   * The abstract Unix socket name (Linux) the caller listens on, `planter-fd-` and 32 hex digits: the
   * daemon connects to it, checks that the listener is the calling process (pid and uid), and sends
   * the log's open descriptor there.
   */
  reply_to: Schema.String.pipe(
    Schema.filter((name) => /^planter-fd-[0-9a-f]{32}$/.test(name)),
    Schema.annotations(expected("an abstract socket name planter-fd-<32 hex digits>"))
  ),
  /** 32 hex digits the daemon sends back with the descriptor, so the caller knows the message is the daemon's. */
  token: Schema.String.pipe(
    Schema.filter((token) => /^[0-9a-f]{32}$/.test(token)),
    Schema.annotations(expected("32 hex digits"))
  )
})

export const LogsMarksPayload = payload({
  job_id: JobIdString,
  stream: LogStream,
  /** Only marks past this offset, or null from the start. */
  after_offset: Schema.NullOr(wholeNumber("a whole number of bytes, or null", 0, Number.MAX_SAFE_INTEGER)),
  limit: wholeNumber(`a whole number of marks from 1 to ${MAX_LOG_MARKS_PAGE}`, 1, MAX_LOG_MARKS_PAGE)
})

export const EventsListPayload = payload({
  /** Only events at or after this time (ms since the epoch), or null for all. */
  since_ms: Schema.NullOr(wholeNumber("a time in ms since the epoch, or null", 0, Number.MAX_SAFE_INTEGER)),
  /** Only events after this id (the cursor of the previous page), or null from the start. */
  after_id: Schema.NullOr(wholeNumber("an event id, or null", 0, Number.MAX_SAFE_INTEGER)),
  job_id: Schema.NullOr(JobIdString),
  cell_id: Schema.NullOr(Schema.String.annotations(expected("a cell id (cell-…), or null"))),
  limit: wholeNumber(`a whole number of events from 1 to ${MAX_EVENTS_PAGE}`, 1, MAX_EVENTS_PAGE)
})

export const EventsFollowPayload = payload({
  /** Only events at or after this time (ms since the epoch), or null for all: the history to send before following. */
  since_ms: Schema.NullOr(wholeNumber("a time in ms since the epoch, or null", 0, Number.MAX_SAFE_INTEGER)),
  /** Only events after this id (the last one the client has), or null from the start. */
  after_id: Schema.NullOr(wholeNumber("an event id, or null", 0, Number.MAX_SAFE_INTEGER)),
  job_id: Schema.NullOr(JobIdString),
  cell_id: Schema.NullOr(Schema.String.annotations(expected("a cell id (cell-…), or null")))
})

/*
 * Every RPC can answer `unauthorized`: the caller's role (from its
 * connection's peer credentials) does not allow the request, or the cell
 * or job it targets belongs to another user.
 */
const Version = Rpc.make("Version", { success: VersionInfo, error: Unauthorized })
const Health = Rpc.make("Health", { success: HealthInfo, error: Schema.Union(Unauthorized, Internal) })
const CellCreate = Rpc.make("CellCreate", {
  payload: CellCreatePayload,
  success: Cell,
  error: Schema.Union(Unauthorized, InvalidRequest, LimitInvalid, Conflict, Internal)
})
const CellList = Rpc.make("CellList", {
  payload: CellListPayload,
  success: CellPage,
  error: Schema.Union(Unauthorized, InvalidRequest, Internal)
})
const CellRemove = Rpc.make("CellRemove", {
  payload: CellRemovePayload,
  success: Cell,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})
const JobRun = Rpc.make("JobRun", {
  payload: JobRunPayload,
  success: Job,
  error: Schema.Union(Unauthorized, InvalidRequest, LimitInvalid, NotFound, Conflict, SandboxUnavailable, Internal)
})
const JobStatus = Rpc.make("JobStatus", {
  payload: JobStatusPayload,
  success: Job,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})
const JobList = Rpc.make("JobList", {
  payload: JobListPayload,
  success: JobPage,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Internal)
})
const JobKill = Rpc.make("JobKill", {
  payload: JobKillPayload,
  success: Job,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})
const JobStdin = Rpc.make("JobStdin", {
  payload: JobStdinPayload,
  success: Schema.Void,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})
const JobRemove = Rpc.make("JobRemove", {
  payload: JobRemovePayload,
  success: Job,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})
const JobPrune = Rpc.make("JobPrune", {
  payload: JobPrunePayload,
  success: PruneResult,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Internal)
})
const CellShow = Rpc.make("CellShow", {
  payload: CellShowPayload,
  success: CellInfo,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Internal)
})
const LogsRead = Rpc.make("LogsRead", {
  payload: LogsReadPayload,
  success: LogChunk,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})

/** Hands the caller an open read-only descriptor of a job's log (fast bulk transfer; Linux). */
const LogsOpen = Rpc.make("LogsOpen", {
  payload: LogsOpenPayload,
  success: LogFileInfo,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})

/** When the daemon saw a log reach each size: the basis of `--timestamps`, `--since` and `--all`. */
const LogsMarks = Rpc.make("LogsMarks", {
  payload: LogsMarksPayload,
  success: LogMarksPage,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})

const EventsList = Rpc.make("EventsList", {
  payload: EventsListPayload,
  success: JournalPage,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal)
})

/**
 * The journal as it is written: every event after `after_id` and since
 * `since_ms` (matching the filters), then each new one as the daemon
 * journals it, pushed down the stream until the client stops reading.
 */
const EventsFollow = Rpc.make("EventsFollow", {
  payload: EventsFollowPayload,
  success: JournalEntry,
  error: Schema.Union(Unauthorized, InvalidRequest, NotFound, Conflict, Internal),
  stream: true
})

/** The daemon's live fibers (admin only): what each job, connection, follower and the monitor is doing. */
const DebugFibers = Rpc.make("DebugFibers", {
  success: Schema.Array(FiberInfo),
  error: Schema.Union(Unauthorized, Internal)
})

/** The protocol as scripts see it: strict payloads, so the client's types say exactly what a request holds. */
export class PlanterRpcs extends RpcGroup.make(
  Version,
  Health,
  CellCreate,
  CellList,
  CellRemove,
  JobRun,
  JobStatus,
  JobList,
  JobKill,
  LogsRead,
  EventsList,
  JobStdin,
  JobRemove,
  JobPrune,
  CellShow,
  LogsOpen,
  LogsMarks,
  EventsFollow,
  DebugFibers
).middleware(CallerMiddleware) {}

/**
 * The same RPC, its payload left unchecked by the protocol. When a payload
 * does not decode, @effect/rpc answers with a defect carrying the parse
 * tree, not with one of the RPC's errors; so the daemon takes any payload
 * and its handler decodes it with the strict schema above, answering
 * `invalid_request` that names the field. Success and error schemas are
 * the strict RPC's own.
 */
const unchecked = <
  const Tag extends string,
  Payload extends Schema.Schema.Any,
  Success extends Schema.Schema.Any,
  Error extends Schema.Schema.All
>(
  rpc: Rpc.Rpc<Tag, Payload, Success, Error>
) => Rpc.make(rpc._tag, { payload: Schema.Unknown, success: rpc.successSchema, error: rpc.errorSchema })

/**
 * PlanterRpcs as it travels: same tags, successes and errors, payloads
 * unchecked until a handler decodes them. The daemon serves it, and the
 * client sends through it (typed as PlanterRpcs), so that a script's bad
 * payload comes back as a typed `invalid_request` from the daemon rather
 * than a ParseError thrown by the call. RPCs without a payload keep theirs.
 */
export class PlanterWireRpcs extends RpcGroup.make(
  Version,
  Health,
  unchecked(CellCreate),
  unchecked(CellList),
  unchecked(CellRemove),
  unchecked(JobRun),
  unchecked(JobStatus),
  unchecked(JobList),
  unchecked(JobKill),
  unchecked(LogsRead),
  unchecked(EventsList),
  unchecked(JobStdin),
  unchecked(JobRemove),
  unchecked(JobPrune),
  unchecked(CellShow),
  unchecked(LogsOpen),
  unchecked(LogsMarks),
  // Its success schema is the stream's (RpcSchema.Stream): unchanged, it stays a streaming RPC on the wire.
  unchecked(EventsFollow),
  DebugFibers
).middleware(CallerMiddleware) {}
