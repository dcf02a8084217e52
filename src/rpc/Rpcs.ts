import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import { Schema } from "effect"
import { Conflict, Internal, InvalidRequest, NotFound, SandboxUnavailable } from "./Errors.js"
import { Cell, Env, HealthInfo, Job, LogChunk, LogStream, NetworkPolicy, VersionInfo } from "./Models.js"

/** Bumped on any incompatible change to the RPCs below; the client refuses a daemon that speaks another. */
export const PROTOCOL_VERSION = 2

/** The largest chunk one LogsRead may ask for; larger requests are refused, not truncated silently. */
export const MAX_LOG_CHUNK_BYTES = 4 * 1024 * 1024

/** The longest a LogsRead follow may wait for new bytes before answering with what it has. */
export const MAX_FOLLOW_WAIT_MS = 60_000

/**
 * Ids travel as plain strings and are validated by the daemon, so a malformed
 * id gets an `invalid_request` that says what an id looks like instead of a
 * protocol-level decode failure.
 */
const IdString = Schema.String

export class PlanterRpcs extends RpcGroup.make(
  Rpc.make("Version", { success: VersionInfo }),
  Rpc.make("Health", { success: HealthInfo, error: Internal }),
  Rpc.make("CellCreate", {
    payload: {
      name: Schema.String,
      env: Env,
      read_paths: Schema.Array(Schema.String),
      network: NetworkPolicy
    },
    success: Cell,
    error: Schema.Union(InvalidRequest, Conflict, Internal)
  }),
  Rpc.make("CellList", { success: Schema.Array(Cell), error: Internal }),
  Rpc.make("CellRemove", {
    payload: { cell_id: IdString, force: Schema.Boolean },
    success: Cell,
    error: Schema.Union(InvalidRequest, NotFound, Conflict, Internal)
  }),
  Rpc.make("JobRun", {
    payload: {
      cell_id: IdString,
      argv: Schema.Array(Schema.String),
      env: Env,
      cwd: Schema.NullOr(Schema.String),
      network: Schema.NullOr(NetworkPolicy)
    },
    success: Job,
    error: Schema.Union(InvalidRequest, NotFound, SandboxUnavailable, Internal)
  }),
  Rpc.make("JobStatus", {
    payload: { job_id: IdString },
    success: Job,
    error: Schema.Union(InvalidRequest, NotFound, Internal)
  }),
  Rpc.make("JobList", {
    payload: { cell_id: Schema.NullOr(IdString) },
    success: Schema.Array(Job),
    error: Schema.Union(InvalidRequest, NotFound, Internal)
  }),
  Rpc.make("JobKill", {
    payload: { job_id: IdString, force: Schema.Boolean },
    success: Job,
    error: Schema.Union(InvalidRequest, NotFound, Internal)
  }),
  Rpc.make("LogsRead", {
    payload: {
      job_id: IdString,
      stream: LogStream,
      offset: Schema.Number,
      max_bytes: Schema.Number,
      follow: Schema.Boolean,
      wait_ms: Schema.Number
    },
    success: LogChunk,
    error: Schema.Union(InvalidRequest, NotFound, Internal)
  })
) {}

