import { NodeSocketServer } from "@effect/platform-node"
import { SocketServer } from "@effect/platform"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { claimSocketPath, secureAndRemoveOnClose } from "../layers/SocketGuard.js"
import { HandlersLive } from "./Handlers.js"
import { PlanterRpcs } from "./Rpcs.js"

/**
 * Frames above this size are refused and the connection closed: requests
 * are small (argv, env), so a larger frame is garbage or abuse, and must not
 * make the daemon buffer without bound.
 */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024

export const SerializationLive = RpcSerialization.layerMsgPackWith({ useRecords: true, maxBufferSize: MAX_FRAME_BYTES })

/** Claims the path, listens, then restricts the socket file; closing unlinks it first, then stops the server. */
const socketServer = (socketPath: string) =>
  Layer.scoped(
    SocketServer.SocketServer,
    Effect.gen(function*() {
      yield* claimSocketPath(socketPath)
      const server = yield* NodeSocketServer.make({ path: socketPath })
      yield* secureAndRemoveOnClose(socketPath)
      return server
    })
  )

/** The RPC server on the Unix socket at `socketPath`, serving PlanterRpcs with HandlersLive. */
export const layer = (socketPath: string) =>
  RpcServer.layer(PlanterRpcs, { spanPrefix: "planterd" }).pipe(
    Layer.provide(HandlersLive),
    Layer.provide(RpcServer.layerProtocolSocketServer),
    Layer.provide(SerializationLive),
    Layer.provide(socketServer(socketPath))
  )
