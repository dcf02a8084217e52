import { Schema } from "effect"
import { CellId, JobId } from "./Ids.js"
import { expected, expectedShape } from "./RequestValidation.js"

/**
 * Text that reaches the OS as a C string (argv, env, paths): a NUL byte would
 * cut it short or make the call fail, so it is refused where it arrives.
 */
export const OsString = Schema.String.annotations(expected("a string")).pipe(
  Schema.filter((text) => !text.includes("\u0000"), {
    message: () => "must not contain null bytes (\\0): the OS cannot pass them"
  })
)

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const ENV_NAME_RULE = "an environment variable name is letters, digits and underscores, not starting with a digit"

/** Environment variables as given by a user: names are validated, values are free text without NUL. */
export const EnvName = Schema.String.pipe(Schema.pattern(ENV_NAME, { message: () => ENV_NAME_RULE }))

/**
 * Only a plain object is an env: a msgpack map arrives as a `Map`, and a
 * Record would read none of its entries and answer `{}` without a word.
 */
const PlainObject = Schema.declare(
  (input: unknown): input is { readonly [name: string]: unknown } => {
    if (typeof input !== "object" || input === null) return false
    const proto = Object.getPrototypeOf(input)
    return proto === Object.prototype || proto === null
  },
  expectedShape("an object of NAME: \"value\" pairs")
)

/**
 * The key schema is a plain string on purpose: a Record whose key schema
 * refuses a key drops that entry silently (`{"BAD-NAME": "x"}` would decode
 * as `{}`). The names are checked after, so a bad one is refused, named.
 */
export const Env = Schema.compose(PlainObject, Schema.Record({ key: Schema.String, value: OsString }), {
  strict: false
}).pipe(
  Schema.filter((env) => {
    for (const name of Object.keys(env)) {
      if (!ENV_NAME.test(name)) return { path: [name], message: ENV_NAME_RULE }
    }
    return true
  })
)
export type Env = typeof Env.Type

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/
const JOB_NAME_RULE =
  "a job name is 1 to 63 letters, digits, '_', '.' and '-', starting with a letter or digit, and not starting with \"job-\" (that is how ids start)"

/** A job's name: usable wherever a job id is, so it must never look like one. */
export const JobName = Schema.String.pipe(
  Schema.filter((name) => (JOB_NAME.test(name) && !name.startsWith("job-")) || JOB_NAME_RULE)
)

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/
const LABEL_KEY_RULE = "a label key is 1 to 63 letters, digits, '_', '.', '/' and '-', starting with a letter or digit"
export const MAX_LABELS = 32
export const MAX_LABEL_VALUE_CHARS = 256

/** A job's labels: checked keys, short values without NUL or newline, at most MAX_LABELS. */
export const JobLabels = Schema.compose(PlainObject, Schema.Record({ key: Schema.String, value: Schema.String }), {
  strict: false
}).pipe(
  Schema.filter((labels) => {
    const keys = Object.keys(labels)
    if (keys.length > MAX_LABELS) return `at most ${MAX_LABELS} labels, got ${keys.length}`
    for (const key of keys) {
      if (!LABEL_KEY.test(key)) return { path: [key], message: LABEL_KEY_RULE }
      const value = labels[key]!
      if (value.length > MAX_LABEL_VALUE_CHARS || /[\u0000\n]/.test(value)) {
        return {
          path: [key],
          message: `a label value is at most ${MAX_LABEL_VALUE_CHARS} characters, without NUL or newline`
        }
      }
    }
    return true
  })
)

export const NetworkPolicy = Schema.Literal("allow", "deny").annotations(expected("\"allow\" or \"deny\""))
export type NetworkPolicy = typeof NetworkPolicy.Type

export const SandboxMode = Schema.Literal("disabled", "permissive", "enforced")
export type SandboxMode = typeof SandboxMode.Type

export const SandboxBackend = Schema.Literal("none", "bubblewrap", "sandbox-exec")
export type SandboxBackend = typeof SandboxBackend.Type

/** Optional on the wire and in constructors, always present once decoded. */
const OwnerUid = Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null })

/** One limit: a whole number (milliseconds or bytes), or null for none. */
const LimitValue = Schema.NullOr(Schema.Int.pipe(Schema.nonNegative()))

/**
 * A job's limits, in the shape the earlier prototype recorded (and the limits
 * issue adopts): `timeout_ms`, `max_rss_bytes`, `max_log_bytes`, each null or
 * a whole number. Every field is optional so that `{}`, `null` (jobs recorded
 * before limits existed) and the prototype's full objects all decode. A job
 * records its effective limits (its own, its cell's defaults, the daemon's
 * default log quota); the LimitMonitor enforces them.
 */
export const ResourceLimits = Schema.NullOr(Schema.Struct({
  timeout_ms: Schema.optional(LimitValue),
  max_rss_bytes: Schema.optional(LimitValue),
  max_log_bytes: Schema.optional(LimitValue)
}))
export type ResourceLimits = typeof ResourceLimits.Type

export class Cell extends Schema.Class<Cell>("Cell")({
  id: CellId,
  name: Schema.String,
  env: Env,
  read_paths: Schema.Array(Schema.String),
  network: NetworkPolicy,
  dir: Schema.String,
  created_at_ms: Schema.Number,
  /** The uid of the caller that created it (null: made before owners were recorded, i.e. the daemon's user). */
  owner_uid: OwnerUid,
  /** Default limits of its jobs, which a job may tighten but not loosen (null: none). */
  limits: Schema.optionalWith(ResourceLimits, { default: () => null })
}) {}

/** The names of the limits, as fields of ResourceLimits. */
export const LIMIT_NAMES = ["timeout_ms", "max_rss_bytes", "max_log_bytes"] as const
export type LimitName = typeof LIMIT_NAMES[number]

/** A running job's usage, as the monitor last sampled it (its whole tree). */
export class JobUsage extends Schema.Class<JobUsage>("JobUsage")({
  /** When this sample was taken (ms since the epoch). */
  sampled_at_ms: Schema.Number,
  rss_bytes: Schema.Number,
  /** CPU time (user + system) of the live members, in ms. */
  cpu_ms: Schema.Number,
  /** CPU use since the previous sample, in % of one core (null on the first sample). */
  cpu_percent: Schema.NullOr(Schema.Number),
  processes: Schema.Number,
  /** stdout + stderr bytes on disk. */
  log_bytes: Schema.Number,
  elapsed_ms: Schema.Number,
  /** The highest RSS seen so far. */
  peak_rss_bytes: Schema.Number
}) {}

/** What a limit kill observed: the limit (ms or bytes), the value seen, and when. */
export class LimitDetail extends Schema.Class<LimitDetail>("LimitDetail")({
  limit: Schema.Number,
  observed: Schema.Number,
  at_ms: Schema.Number
}) {}

export class JobCommand extends Schema.Class<JobCommand>("JobCommand")({
  argv: Schema.NonEmptyArray(Schema.String),
  cwd: Schema.String,
  env: Env,
  limits: ResourceLimits
}) {}

/**
 * `starting`: recorded before its process exists (so no crash leaves a
 * process without a row); `running` once its pid and start time are known.
 */
export const JobStatus = Schema.Literal("starting", "running", "exited")
export type JobStatus = typeof JobStatus.Type

export const TerminationReason = Schema.Literal(
  "exited",
  "terminated_by_user",
  "forced_kill",
  "timeout",
  "memory_limit",
  "log_quota",
  "daemon_shutdown",
  "lost",
  // Only in records imported from the earlier prototype, which said so when it did not know how a job ended.
  "unknown"
)
export type TerminationReason = typeof TerminationReason.Type

export class JobSandbox extends Schema.Class<JobSandbox>("JobSandbox")({
  mode: SandboxMode,
  backend: SandboxBackend,
  network: NetworkPolicy,
  fallback_reason: Schema.NullOr(Schema.String)
}) {}

export class Job extends Schema.Class<Job>("Job")({
  id: JobId,
  cell_id: CellId,
  command: JobCommand,
  status: JobStatus,
  exit_code: Schema.NullOr(Schema.Number),
  signal: Schema.NullOr(Schema.String),
  termination_reason: Schema.NullOr(TerminationReason),
  pid: Schema.NullOr(Schema.Number),
  /** Kernel start time of the job's leader, so a reused pid is never mistaken for the job. */
  pid_start_time: Schema.NullOr(Schema.String),
  started_at_ms: Schema.Number,
  finished_at_ms: Schema.NullOr(Schema.Number),
  sandbox: JobSandbox,
  /** The uid of the caller that started it (null: started before owners were recorded, i.e. the daemon's user). */
  owner_uid: OwnerUid,
  /** Live usage while it runs (null once it ended, or before the first sample). */
  usage: Schema.optionalWith(Schema.NullOr(JobUsage), { default: () => null }),
  /** After it ended: the highest RSS and the CPU time the monitor saw (null when never sampled). */
  peak_rss_bytes: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  cpu_ms: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  /** For `timeout`, `memory_limit` and `log_quota`: the limit and what was observed. */
  limit_detail: Schema.optionalWith(Schema.NullOr(LimitDetail), { default: () => null }),
  /** Its name (`run --name`), unique among the running jobs of its cell; null when it has none. */
  name: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  /** Its labels (`run --label k=v`). */
  labels: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) })
}) {}

/** A cell with what is known of its jobs (`planter cell show`). */
export class CellInfo extends Schema.Class<CellInfo>("CellInfo")({
  cell: Cell,
  running_jobs: Schema.Number,
  total_jobs: Schema.Number,
  /** When its most recent job started (null: it never ran one). */
  last_job_started_at_ms: Schema.NullOr(Schema.Number)
}) {}

/** What `job prune` removed: the jobs' ids (their records and logs are gone). */
export class PruneResult extends Schema.Class<PruneResult>("PruneResult")({
  removed: Schema.Array(Schema.String),
  /** Log bytes freed on disk. */
  freed_bytes: Schema.Number
}) {}

/**
 * One page of jobs, newest first. `next` is the cursor to send as `after`
 * for the following (older) page, or null when this page is the last.
 */
export class JobPage extends Schema.Class<JobPage>("JobPage")({
  jobs: Schema.Array(Job),
  next: Schema.NullOr(Schema.String)
}) {}

/** One page of cells, oldest first; `next` as in JobPage. */
export class CellPage extends Schema.Class<CellPage>("CellPage")({
  cells: Schema.Array(Cell),
  next: Schema.NullOr(Schema.String)
}) {}

/** One row of the events journal: what happened, to which cell or job, and who asked (uid and pid of the caller). */
export class JournalEntry extends Schema.Class<JournalEntry>("JournalEntry")({
  id: Schema.Number,
  at_ms: Schema.Number,
  kind: Schema.String,
  cell_id: Schema.NullOr(Schema.String),
  job_id: Schema.NullOr(Schema.String),
  /** The caller's uid; null for what the daemon did on its own (a job exiting, a restart adopting). */
  uid: Schema.NullOr(Schema.Number),
  pid: Schema.NullOr(Schema.Number),
  detail: Schema.Record({ key: Schema.String, value: Schema.Unknown })
}) {}

/** A page of the journal, oldest first; `next_id` is the cursor of the next page, null at the end. */
export class JournalPage extends Schema.Class<JournalPage>("JournalPage")({
  events: Schema.Array(JournalEntry),
  next_id: Schema.NullOr(Schema.Number)
}) {}

export const LogStream = Schema.Literal("stdout", "stderr").annotations(expected("\"stdout\" or \"stderr\""))
export type LogStream = typeof LogStream.Type

export class LogChunk extends Schema.Class<LogChunk>("LogChunk")({
  data: Schema.Uint8ArrayFromSelf,
  /** Offset of the next byte to read. */
  offset: Schema.Number,
  /** No more bytes are on disk right now past `offset`. */
  eof: Schema.Boolean,
  /** The job has finished and everything it wrote has been read: nothing more will come. */
  complete: Schema.Boolean
}) {}

export class VersionInfo extends Schema.Class<VersionInfo>("VersionInfo")({
  version: Schema.String,
  protocol_version: Schema.Number
}) {}

export class HealthInfo extends Schema.Class<HealthInfo>("HealthInfo")({
  /** False while the daemon is degraded. */
  ok: Schema.Boolean,
  /** What is wrong while it is (e.g. a full disk holding job ends in memory), else null. */
  degraded: Schema.NullOr(Schema.String),
  version: Schema.String,
  pid: Schema.Number,
  uptime_ms: Schema.Number,
  socket: Schema.String,
  state_dir: Schema.String,
  sandbox: Schema.Struct({
    mode: SandboxMode,
    backend: SandboxBackend,
    available: Schema.Boolean,
    unavailable_reason: Schema.NullOr(Schema.String)
  }),
  running_jobs: Schema.Number,
  /**
   * The usage monitor: its last tick and its own cost (null before its first tick). Required: every daemon
   * of this protocol sends it (a client refuses another protocol). As an optional field with a default it
   * made the struct a transformation, which parsed every field twice to encode or decode a Health answer.
   */
  monitor: Schema.NullOr(Schema.Struct({
    interval_ms: Schema.Number,
    last_tick_at_ms: Schema.NullOr(Schema.Number),
    ticks: Schema.Number,
    restarts: Schema.Number,
    /** CPU time of the daemon spent in the last tick, and on average per tick, in µs. */
    last_tick_cpu_us: Schema.Number,
    mean_tick_cpu_us: Schema.Number,
    /** The average CPU share of one core the monitor uses at its interval. */
    cpu_percent_of_core: Schema.Number
  }))
}) {}

/**
 * One live fiber of the daemon, as `planter debug fibers` shows it: what it
 * is (its labels: `planter.fiber` = job, connection, monitor, follower,
 * request…, with the job id or peer it serves), which fiber started it, what
 * it is doing (its current span, and since when) and whether it is running
 * or suspended waiting on something.
 */
export class FiberInfo extends Schema.Class<FiberInfo>("FiberInfo")({
  id: Schema.Number,
  /** The tracked fiber that forked this one, or null for a root. */
  parent_id: Schema.NullOr(Schema.Number),
  /** `running`, `suspended` or `done`. */
  status: Schema.String,
  /** For a suspended fiber: the fibers it waits on (their ids), if any. */
  blocked_on: Schema.Array(Schema.Number),
  labels: Schema.Record({ key: Schema.String, value: Schema.String }),
  /** Its innermost open span's name, or null. */
  span: Schema.NullOr(Schema.String),
  /** How long it has been in that span, in ms. */
  span_ms: Schema.NullOr(Schema.Number),
  /** When the fiber started (ms since the epoch). */
  started_at_ms: Schema.Number
}) {}
