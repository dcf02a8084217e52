/**
 * One line for any failure a script gets from the client: `CODE: message`.
 * RPC errors carry a stable `code` (`not_found`, `conflict`, …); the
 * client's own failures get one here (`no_daemon`, `protocol_mismatch`,
 * `connection_lost`). Scripts print this instead of the error object,
 * whose default rendering is pages of Schema stack frames:
 *
 *   program.pipe(Effect.catchAll((error) => Console.error(formatPlanterError(error))))
 */
export const planterErrorCode = (error: unknown): string => {
  const tagged = error as { readonly _tag?: unknown; readonly code?: unknown } | null
  if (typeof tagged?.code === "string") return tagged.code
  switch (tagged?._tag) {
    case "DaemonUnavailable":
      return "no_daemon"
    case "ProtocolMismatch":
      return "protocol_mismatch"
    case "RpcClientError":
      return "connection_lost"
    case "ParseError":
      return "invalid_request"
    default:
      return "internal"
  }
}

export const formatPlanterError = (error: unknown): string => {
  const message = (error as { readonly message?: unknown } | null)?.message
  return `${planterErrorCode(error)}: ${typeof message === "string" && message !== "" ? message : String(error)}`
}
