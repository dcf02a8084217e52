import { Context } from "effect"
import type { Deferred, Effect, Option, Queue, Ref, Scope } from "effect"
import type { JobId } from "../rpc/Ids.js"
import type { Job, JobUsage, LimitDetail, TerminationReason } from "../rpc/Models.js"
import type { JobTree } from "./ProcessProbe.js"

/** A job whose process tree is alive and owned by this daemon. */
export interface RunningJob {
  /** Its record as it started running. */
  readonly job: Job
  /** Its leader's identity and every member seen so far. */
  readonly tree: JobTree
  /** Why it is ending, once something ended it: the first reason set wins and is persisted. */
  readonly endReason: Ref.Ref<TerminationReason | null>
  /** Completes with its final record once the tree is gone, even if that record is not yet on disk. */
  readonly ended: Deferred.Deferred<Job>
  /**
   * What the LimitMonitor last saw of it (written by the monitor only), and
   * for a limit kill what it observed (written with the end reason, by the
   * one that set it). Read when the job ends to record its peak and CPU time.
   */
  readonly observed: { usage: JobUsage | null; limitDetail: LimitDetail | null }
  /** The write end of its stdin pipe, when it was started with one (`run -i`); null otherwise or once adopted. */
  readonly stdin?: JobStdinPipe | null
}

/** A job's stdin as the daemon holds it: writes wait until the pipe takes the bytes. */
export interface JobStdinPipe {
  readonly write: (data: Uint8Array) => Effect.Effect<void, string>
  readonly close: Effect.Effect<void>
}

export type RegistryChange =
  | { readonly _tag: "Started"; readonly job: Job }
  | { readonly _tag: "Ended"; readonly job: Job }

/**
 * The jobs running now. The job runner adds and removes them; the log
 * reader, `run --wait` and the coming limit monitor read it and subscribe
 * to its changes instead of reaching into the runner.
 */
export interface JobRegistryShape {
  readonly add: (entry: RunningJob) => Effect.Effect<void>
  readonly remove: (id: JobId, ended: Job | null) => Effect.Effect<void>
  readonly get: (id: JobId) => Option.Option<RunningJob>
  readonly all: Effect.Effect<ReadonlyArray<RunningJob>>
  readonly count: Effect.Effect<number>
  /** Completes once the job is no longer running (at once for a job that is not). */
  readonly awaitEnded: (id: JobId) => Effect.Effect<void>
  /** Started/ended notices from now on, for as long as the scope lives. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RegistryChange>, never, Scope.Scope>
}

export class JobRegistry extends Context.Tag("planter/JobRegistry")<JobRegistry, JobRegistryShape>() {}
