import { Context } from "effect"
import type { Array as Arr, Effect } from "effect"
import type { CellId, JobId } from "../rpc/Ids.js"
import type {
  Cell,
  Env,
  Job,
  JobPage,
  LimitDetail,
  LimitName,
  NetworkPolicy,
  TerminationReason
} from "../rpc/Models.js"
import type {
  DaemonFault,
  InvalidInput,
  LimitRejected,
  SandboxRefused,
  StateConflict,
  UnknownEntity
} from "./DomainErrors.js"
import type { StateError } from "./StateRepository.js"
import type { JobQuery } from "./StateRepository.js"

export interface RunRequest {
  /** The program and its arguments; none holds a NUL (JobRunPayload refuses one). */
  readonly argv: Arr.NonEmptyReadonlyArray<string>
  readonly env: Env
  /** Relative to the cell dir, or absolute inside it; null means the cell dir. */
  readonly cwd: string | null
  /** Null inherits the cell's policy; a job may tighten it, never loosen it. */
  readonly network: NetworkPolicy | null
  /** The uid of the caller starting it: only it (or an admin) may kill it. */
  readonly owner_uid: number | null
  /** Its own limits as asked (null fields inherit the cell's); checked by `run`. */
  readonly limits?: { readonly [K in LimitName]?: number | null | undefined } | null | undefined
  /** Its name (checked by JobRunPayload), unique among the cell's running jobs. */
  readonly name?: string | null | undefined
  readonly labels?: Readonly<Record<string, string>> | undefined
  /** Give it a pipe as stdin (written with `writeStdin`) instead of /dev/null. */
  readonly stdin?: boolean | undefined
}

/** The reasons a limit ends a job with. */
export type LimitReason = Extract<TerminationReason, "timeout" | "memory_limit" | "log_quota">

/** A job may tighten its cell's network policy, never loosen it: deny from either wins. */
export const effectiveNetwork = (cell: NetworkPolicy, job: NetworkPolicy | null): NetworkPolicy =>
  cell === "deny" || job === "deny" ? "deny" : "allow"

/**
 * Owns running jobs: each job's life is a scope held by one fiber, all
 * children of the daemon's scope. Closing that scope kills every tree
 * (reason `daemon_shutdown`), unless the daemon keeps jobs for the next one
 * to adopt. Who runs now is the JobRegistry's to answer.
 */
export interface JobSupervisorShape {
  readonly run: (
    cell: Cell,
    request: RunRequest
  ) => Effect.Effect<Job, InvalidInput | LimitRejected | SandboxRefused | StateConflict | DaemonFault | StateError>
  /** Takes over a job a previous daemon left running (its pid and start time checked by the caller). */
  readonly adopt: (job: Job) => Effect.Effect<void>
  readonly get: (id: JobId) => Effect.Effect<Job, UnknownEntity | DaemonFault | StateError>
  readonly list: (cellId: CellId | null) => Effect.Effect<ReadonlyArray<Job>, DaemonFault | StateError>
  /** One page of jobs, newest first, with live usage for those running; `next` pages on. */
  readonly page: (query: JobQuery) => Effect.Effect<JobPage, DaemonFault | StateError>
  /** Kills the job's whole tree and answers its record once the tree is verified empty. */
  readonly kill: (
    id: JobId,
    options: { readonly force: boolean }
  ) => Effect.Effect<Job, UnknownEntity | DaemonFault | StateError>
  /**
   * Ends a running job for a limit, exactly as a kill does (its scope
   * closes; the grace period is the limit's own, DaemonConfig.limitGrace,
   * else killGrace) but with the limit's reason and what
   * was observed. The first reason wins: when the job is already ending
   * (killed, exited, another limit) nothing changes. Answers its record.
   */
  readonly end: (
    id: JobId,
    reason: LimitReason,
    detail: LimitDetail
  ) => Effect.Effect<Job, UnknownEntity | DaemonFault | StateError>
  /** Kills every running job of a cell, or fails with `conflict` when some run and `force` is false. */
  readonly stopCell: (
    cellId: CellId,
    options: { readonly force: boolean }
  ) => Effect.Effect<void, StateConflict | DaemonFault | StateError>
  /** Writes to a running job's stdin pipe (given at `run` with `stdin: true`); `eof` closes it after. */
  readonly writeStdin: (
    id: JobId,
    data: Uint8Array,
    eof: boolean
  ) => Effect.Effect<void, UnknownEntity | StateConflict | DaemonFault | StateError>
  /** Why the daemon cannot keep its records right now (e.g. job ends held in memory on a full disk), or null. */
  readonly degraded: Effect.Effect<string | null>
}

export class JobSupervisor extends Context.Tag("planter/JobSupervisor")<JobSupervisor, JobSupervisorShape>() {}
