import { Context, Option, Schema } from "effect"
import type { Effect } from "effect"
import type { CellId, JobId } from "../rpc/Ids.js"
import type { Cell, Job, TerminationReason } from "../rpc/Models.js"

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
  "job_lost"
)
export type EventKind = typeof EventKind.Type

export interface JournalEvent {
  readonly kind: EventKind
  readonly cell_id: CellId | null
  readonly job_id: JobId | null
  readonly detail: Record<string, unknown>
}

export class StoredEvent extends Schema.Class<StoredEvent>("StoredEvent")({
  id: Schema.Number,
  at_ms: Schema.Number,
  kind: EventKind,
  cell_id: Schema.NullOr(Schema.String),
  job_id: Schema.NullOr(Schema.String),
  detail: Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}) {}

export interface JobFinish {
  readonly exit_code: number | null
  readonly signal: string | null
  readonly termination_reason: TerminationReason
  readonly finished_at_ms: number
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
  readonly deleteCell: (id: CellId) => Effect.Effect<void, StateError>
  readonly insertJob: (job: Job) => Effect.Effect<void, StateError>
  readonly finishJob: (id: JobId, finish: JobFinish, event: JournalEvent) => Effect.Effect<Option.Option<Job>, StateError>
  readonly getJob: (id: JobId) => Effect.Effect<Option.Option<Job>, StateError>
  readonly listJobs: (cellId: CellId | null) => Effect.Effect<ReadonlyArray<Job>, StateError>
  readonly listRunningJobs: Effect.Effect<ReadonlyArray<Job>, StateError>
  readonly appendEvent: (event: JournalEvent) => Effect.Effect<void, StateError>
  readonly listEvents: Effect.Effect<ReadonlyArray<StoredEvent>, StateError>
}

export class StateRepository extends Context.Tag("planter/StateRepository")<StateRepository, StateRepositoryShape>() {}
