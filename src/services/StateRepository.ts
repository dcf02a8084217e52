import { Context, Option, Schema } from "effect"
import type { Effect } from "effect"
import type { CellId, JobId } from "../rpc/Ids.js"
import type { Cell, Job, JobStatus, TerminationReason } from "../rpc/Models.js"
import type { Cursor } from "./Paging.js"

/** The database could not be read or written; the request that hit it changed nothing. */
export class StateError extends Schema.TaggedError<StateError>()("StateError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {}

export const EventKind = Schema.Literal(
  "cell_created",
  "cell_removed",
  "job_started",
  "job_start_failed",
  "job_sandbox_fallback",
  "job_exited",
  "job_killed",
  "job_adopted",
  "job_lost",
  "cell_removing",
  /** A state-changing request, audited with the caller's uid and pid and its outcome. */
  "request",
  /** A request refused by the authorization policy (role too low, or another user's cell or job). */
  "denied",
  "legacy_import",
  /** A finished job's record and logs removed (`job rm`, `job prune`, log retention). */
  "job_removed"
)
export type EventKind = typeof EventKind.Type

export interface JournalEvent {
  readonly kind: EventKind
  readonly cell_id: CellId | null
  readonly job_id: JobId | null
  readonly detail: Record<string, unknown>
  /** Who asked: the caller's uid and pid (absent for what the daemon does on its own). */
  readonly uid?: number | null
  readonly pid?: number | null
}

/** A page of the journal: events after `afterId` (a cursor), at or after `sinceMs`, oldest first. */
export interface EventQuery {
  readonly sinceMs: number | null
  readonly afterId: number | null
  readonly jobId: string | null
  readonly cellId: string | null
  readonly limit: number
}

export class StoredEvent extends Schema.Class<StoredEvent>("StoredEvent")({
  id: Schema.Number,
  at_ms: Schema.Number,
  kind: EventKind,
  cell_id: Schema.NullOr(Schema.String),
  job_id: Schema.NullOr(Schema.String),
  uid: Schema.NullOr(Schema.Number),
  pid: Schema.NullOr(Schema.Number),
  detail: Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}) {}

/** A page of jobs, newest first (by started_at_ms, then id): the filters all hold, and rows sort before `before`. */
export interface JobQuery {
  readonly cellId: CellId | null
  /** Any of these statuses (null: all). */
  readonly statuses: ReadonlyArray<JobStatus> | null
  /** started_at_ms >= sinceMs */
  readonly sinceMs: number | null
  /** started_at_ms < untilMs */
  readonly untilMs: number | null
  /** Only jobs with this name (null: any). */
  readonly name: string | null
  /** Only jobs carrying every one of these labels. */
  readonly labels: Readonly<Record<string, string>>
  /** The last row of the previous page. */
  readonly before: Cursor | null
  readonly limit: number
}

/** A page of cells, oldest first (by created_at_ms, then id), past `after`. */
export interface CellQuery {
  readonly after: Cursor | null
  readonly limit: number
}

/** The leader's identity, recorded once it runs: a pid alone could be reused by a stranger. */
export interface JobProcess {
  readonly pid: number
  readonly pid_start_time: string | null
  readonly sandbox: Job["sandbox"]
}

export interface JobFinish {
  readonly exit_code: number | null
  readonly signal: string | null
  readonly termination_reason: TerminationReason
  readonly finished_at_ms: number
  /** What the monitor saw by the end (absent: never sampled). */
  readonly peak_rss_bytes?: number | null
  readonly cpu_ms?: number | null
  readonly limit_detail?: { readonly limit: number; readonly observed: number; readonly at_ms: number } | null
}

/** What an import of the prototype's state decided about one of its record files. */
export interface LegacyFileOutcome {
  /** Relative to the source dir: `cells/<id>/cell.json`, `jobs/<id>.json`. */
  readonly path: string
  readonly record_id: string | null
  readonly outcome: "imported" | "skipped"
  readonly reason: string | null
  /** Size and change time of a skipped file, so that a changed one is considered again. */
  readonly fingerprint: string | null
}

/** What earlier imports of a source decided, by relative path. */
export type LegacyHandledFiles = ReadonlyMap<string, Pick<LegacyFileOutcome, "outcome" | "fingerprint">>

/** Which of the given ids and names are already taken. */
export interface TakenIds {
  /** Cells (any, also one being removed) by id, with their dir. */
  readonly cells: ReadonlyMap<string, string>
  readonly cellNames: ReadonlySet<string>
  readonly jobIds: ReadonlySet<string>
}

/** One import of the prototype's state: everything it adds, written in one transaction. */
export interface LegacyImportBatch {
  /** The source dir, absolute: the key that says which source was imported. */
  readonly source: string
  readonly cells: ReadonlyArray<Cell>
  /** Finished jobs only: an imported job is never `running`. */
  readonly jobs: ReadonlyArray<Job>
  /** Per-job notes (a job the prototype recorded running, imported lost). */
  readonly events: ReadonlyArray<JournalEvent>
  readonly files: ReadonlyArray<LegacyFileOutcome>
  /** The import's report, kept with it and journaled as `legacy_import` (with `summary`). */
  readonly report: Record<string, unknown>
  readonly summary: Record<string, unknown>
}

/**
 * Durable state: cells, jobs and the append-only events journal. Each
 * mutation and its journal entry commit together, before the caller replies.
 */
export interface StateRepositoryShape {
  readonly insertCell: (cell: Cell) => Effect.Effect<void, StateError>
  readonly findCellByName: (name: string) => Effect.Effect<Option.Option<Cell>, StateError>
  readonly getCell: (id: CellId) => Effect.Effect<Option.Option<Cell>, StateError>
  readonly listCells: Effect.Effect<ReadonlyArray<Cell>, StateError>
  /** One bounded page of cells, by the indexed (created_at_ms, id) cursor. */
  readonly pageCells: (query: CellQuery) => Effect.Effect<ReadonlyArray<Cell>, StateError>
  /** Marks the cell as being removed (a tombstone that a restart finishes); it takes no new jobs. */
  readonly markCellRemoving: (id: CellId) => Effect.Effect<void, StateError>
  /** Cells whose removal began and did not finish (a crash midway). */
  readonly listRemovingCells: Effect.Effect<ReadonlyArray<Cell>, StateError>
  readonly deleteCell: (id: CellId) => Effect.Effect<void, StateError>
  /** Records a job in `starting`, before its process exists. */
  readonly insertJob: (job: Job) => Effect.Effect<void, StateError>
  /** `starting` → `running`, with the leader's pid and start time and the sandbox it really got. */
  readonly markJobRunning: (id: JobId, process: JobProcess) => Effect.Effect<void, StateError>
  /** Removes a job that never started (its process could not be spawned), journaling why. */
  readonly deleteStartingJob: (id: JobId, event: JournalEvent) => Effect.Effect<void, StateError>
  /**
   * `starting`/`running` → `exited`, journaled; only the first finish counts. Answers the stored record: `ended`
   * (the record as this finish makes it) when this finish is the one stored, saving the read back, else the row.
   */
  readonly finishJob: (
    id: JobId,
    finish: JobFinish,
    event: JournalEvent,
    ended?: Job
  ) => Effect.Effect<Option.Option<Job>, StateError>
  readonly getJob: (id: JobId) => Effect.Effect<Option.Option<Job>, StateError>
  readonly listJobs: (cellId: CellId | null) => Effect.Effect<ReadonlyArray<Job>, StateError>
  /** Jobs named `name`: the running ones first, then the most recent (at most 50). */
  readonly findJobsByName: (name: string) => Effect.Effect<ReadonlyArray<Job>, StateError>
  /** Deletes a finished job's record (never a running one), journaling it; false when there was none to delete. */
  readonly deleteFinishedJob: (id: JobId, event: JournalEvent) => Effect.Effect<boolean, StateError>
  /** Finished jobs that ended at or before a time, oldest first, one bounded batch. */
  readonly finishedJobsBefore: (query: {
    readonly finishedBeforeMs: number
    readonly cellId: CellId | null
    /** Only this owner's jobs (null: anyone's). */
    readonly ownerUid: number | null
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<Job>, StateError>
  readonly cellJobCounts: (
    cellId: CellId
  ) => Effect.Effect<
    { readonly total: number; readonly running: number; readonly lastStartedAtMs: number | null },
    StateError
  >
  /** One bounded page of jobs, by the indexed (started_at_ms, id) cursor. */
  readonly pageJobs: (query: JobQuery) => Effect.Effect<ReadonlyArray<Job>, StateError>
  /** Jobs not yet finished: `starting` and `running`. */
  readonly listUnfinishedJobs: Effect.Effect<ReadonlyArray<Job>, StateError>
  readonly appendEvent: (event: JournalEvent) => Effect.Effect<void, StateError>
  readonly listEvents: Effect.Effect<ReadonlyArray<StoredEvent>, StateError>
  /** One bounded page of the journal, by the indexed id cursor. */
  readonly pageEvents: (query: EventQuery) => Effect.Effect<ReadonlyArray<StoredEvent>, StateError>
  /** What earlier imports of the prototype's state at `source` decided about its files. */
  readonly legacyHandledFiles: (source: string) => Effect.Effect<LegacyHandledFiles, StateError>
  /** Which of these cell ids, cell names (or names starting with `namePrefix`) and job ids are taken. */
  readonly takenIds: (query: {
    readonly cellIds: ReadonlyArray<string>
    readonly cellNames: ReadonlyArray<string>
    readonly namePrefix: string
    readonly jobIds: ReadonlyArray<string>
  }) => Effect.Effect<TakenIds, StateError>
  /**
   * Writes one import of the prototype's state in one transaction: its cells
   * and jobs (a colliding id fails it all: nothing is ever overwritten), the
   * journal (`legacy_import` with counts, and the batch's events), the import
   * and the outcome of every file it dealt with.
   */
  readonly importLegacy: (batch: LegacyImportBatch) => Effect.Effect<void, StateError>
}

export class StateRepository extends Context.Tag("planter/StateRepository")<StateRepository, StateRepositoryShape>() {}
