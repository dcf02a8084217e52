import type { FromClientEncoded } from "@effect/rpc/RpcMessage"
import type { Effect, Runtime } from "effect"
import { Context } from "effect"

/**
 * A request handed to the RPC server without a fiber of its own: the
 * server either serves it at once (it forks the request's fiber itself)
 * and answers `undefined`, or answers what is left to run, in order.
 * `connection` is the runtime of the connection the request came on (its
 * context and FiberRefs: what a fiber forked for each socket read would
 * have had).
 */
export type DispatchRequest = (
  clientId: number,
  message: Extract<FromClientEncoded, { _tag: "Request" }>,
  connection: Runtime.Runtime<never>
) => Effect.Effect<void> | undefined

/**
 * Where the RPC server (RpcServerLean) leaves its synchronous entry for
 * requests, once it runs, and where the socket protocol (PeerSocketProtocol)
 * looks for it: a request then costs no fiber per socket read. Until the
 * server has set it, and for every other message, the protocol's usual
 * `writeRequest` path is taken.
 */
export class RequestDispatch extends Context.Tag("planter/RequestDispatch")<RequestDispatch, {
  request: DispatchRequest | undefined
}>() {}
