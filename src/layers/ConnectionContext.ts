import { Context } from "effect"

/**
 * Services every request of a connection gets in its fiber's context, worked
 * out once for the connection rather than added per request: the RPC server
 * (RpcServerLean) merges them into the context it builds once per
 * connection and handler. Adding a service to a request fiber's context
 * copies the whole context (~30 services); the CallerMiddleware used to do
 * that for the Caller on every request (docs/benchmarks.md, "Health: fewer
 * functions and allocations per call"). It still decides every request: a
 * service here is no permission, only what the request's handler sees once
 * the middleware let it through.
 */
export class ConnectionContext extends Context.Tag("planter/ConnectionContext")<ConnectionContext, {
  /** What `clientId`'s requests get in their context (empty when there is nothing to add). */
  readonly forClient: (clientId: number) => Context.Context<never>
}>() {}
