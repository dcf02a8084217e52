/**
 * The typed client scripts import as `planter/client`.
 *
 *   const client = yield* PlanterClient
 *   const cell = yield* client.CellCreate({ name: "demo", env: {}, read_paths: [], network: "allow" })
 *
 * Provide it with `PlanterClient.layer()` (default socket) or
 * `PlanterClient.layer({ socketPath })`.
 */
import type * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import { Context, Effect, Layer, Schema } from "effect"
import { defaultSocketPath, defaultStateDir } from "./Defaults.js"
import type { Unauthorized } from "./Errors.js"
import * as RpcClientLean from "./RpcClientLean.js"
import { type PlanterRpcs, PlanterWireRpcs, PROTOCOL_VERSION } from "./Rpcs.js"
import { clientSerialization } from "./Serialization.js"

export * from "./ErrorFormat.js"
export * from "./Errors.js"
export * from "./Ids.js"
export * from "./JobOutcome.js"
export { type OpenLogFile, openLogFile } from "./LogFiles.js"
export * from "./LogModels.js"
export * from "./Models.js"
export { allPages, type Paged } from "./Paging.js"
export {
  CellCreatePayload,
  CellListPayload,
  CellRemovePayload,
  CellShowPayload,
  DEFAULT_LIST_PAGE,
  EventsListPayload,
  JobKillPayload,
  JobListPayload,
  JobPrunePayload,
  JobRemovePayload,
  JobRunPayload,
  JobStatusPayload,
  JobStdinPayload,
  LogsMarksPayload,
  LogsOpenPayload,
  LogsReadPayload,
  MAX_EVENTS_PAGE,
  MAX_FOLLOW_WAIT_MS,
  MAX_LIST_PAGE,
  MAX_LOG_CHUNK_BYTES,
  MAX_LOG_MARKS_PAGE,
  MAX_STDIN_CHUNK_BYTES,
  PlanterRpcs,
  PROTOCOL_VERSION
} from "./Rpcs.js"

/** Nothing answers at the socket: the daemon is not running there. */
export class DaemonUnavailable extends Schema.TaggedError<DaemonUnavailable>()("DaemonUnavailable", {
  socketPath: Schema.String,
  message: Schema.String
}) {}

/** The daemon speaks another protocol version than this client. */
export class ProtocolMismatch extends Schema.TaggedError<ProtocolMismatch>()("ProtocolMismatch", {
  daemonVersion: Schema.String,
  daemonProtocol: Schema.Number,
  message: Schema.String
}) {}

export type PlanterClientShape = RpcClient.RpcClient<RpcGroup.Rpcs<typeof PlanterRpcs>, RpcClientError>

export interface PlanterClientOptions {
  /** Default: `$PLANTER_SOCKET`, else `<state dir>/planterd.sock`. */
  readonly socketPath?: string
}

export const resolveSocketPath = (options?: PlanterClientOptions) =>
  options?.socketPath ?? defaultSocketPath(defaultStateDir())

/** The errno of the failed connect (ENOENT, ECONNREFUSED, EACCES, …) when that is why a request failed. */
const connectErrorCode = (error: RpcClientError): string | undefined => {
  const cause = error.cause
  if (!(cause instanceof RpcClientLean.SocketError) || cause.reason !== "Open") return undefined
  const code = (cause.cause as NodeJS.ErrnoException | undefined)?.code
  return typeof code === "string" ? code : "error"
}

/** Why the version check got no answer, in words for the person who ran the command. */
const unavailable = (socketPath: string, error: RpcClientError) => {
  const code = connectErrorCode(error)
  return new DaemonUnavailable({
    socketPath,
    message: code === "EACCES"
      // The file system refused: the socket's mode, or a directory above it, keeps this user out.
      ? `permission denied on ${socketPath} (uid ${
        process.getuid?.() ?? "?"
      }): planterd's socket is not open to this user; ask its operator to allow it (\`planterd --allow-uid ${
        process.getuid?.() ?? "UID"
      }:run\` or --allow-group GROUP:run) and to put the socket where it can reach it`
      : code !== undefined
      ? `no planterd is listening on ${socketPath}: start one with \`planterd --socket ${socketPath}\` (or \`npm start\` in a Planter checkout)`
      : `planterd at ${socketPath} did not answer: ${String(error)}`
  })
}

/**
 * Connects, then checks the daemon's protocol version before handing out the client. The version check's
 * request opens the connection (no separate probe: a connect the daemon accepts and drops costs it ~1.6 ms
 * of CPU), and a failed connect says why, by its errno. The client is RpcClientLean's port of @effect/rpc's
 * (the same messages and spans, a fraction of the work per call), made with its constructor rather than
 * built as layers: a layer build (memo map, scope, a fiber per layer) was ~4 ms of a CLI command's cold
 * start. Answers the client and the daemon's version (`planter version` prints it: no second request).
 */
export const connect = Effect.fn("PlanterClient.make")(function*(options?: PlanterClientOptions) {
  const socketPath = resolveSocketPath(options)
  // Sent through the wire group, typed as PlanterRpcs: the daemon checks every payload and answers a bad
  // one with a typed `invalid_request` naming the field; the strict group would throw a ParseError from
  // the call instead. The payload schemas encode every value as itself, so the bytes sent are the same.
  // Made in the caller's scope: the connection lives as long as the client.
  const client: PlanterClientShape = yield* RpcClientLean.make(PlanterWireRpcs, {
    socketPath,
    serialization: clientSerialization
  })
  const version = yield* client.Version().pipe(
    Effect.catchAll((error): Effect.Effect<never, Unauthorized | DaemonUnavailable> =>
      // Refused by the daemon's policy: say so, with the daemon's words (who, what, and the flag that allows it).
      error._tag === "Unauthorized" ? Effect.fail(error) : Effect.fail(unavailable(socketPath, error))
    )
  )
  if (version.protocol_version !== PROTOCOL_VERSION) {
    return yield* new ProtocolMismatch({
      daemonVersion: version.version,
      daemonProtocol: version.protocol_version,
      message:
        `planterd ${version.version} speaks protocol ${version.protocol_version}, this client speaks ${PROTOCOL_VERSION}: use a planter of the same version as the daemon`
    })
  }
  return { client, daemon: version }
})

/** Connects, then checks the daemon's protocol version before handing out the client. */
export const make = (options?: PlanterClientOptions) => Effect.map(connect(options), (connected) => connected.client)

export class PlanterClient extends Context.Tag("planter/PlanterClient")<PlanterClient, PlanterClientShape>() {
  static layer = (options?: PlanterClientOptions) => Layer.scoped(PlanterClient, make(options))
}
