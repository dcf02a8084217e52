import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as SocketServer from "@effect/platform/SocketServer"
import * as RpcServer from "@effect/rpc/RpcServer"
import { Effect, Layer } from "effect"
import { claimSocketPath, secureAndRemoveOnClose } from "./SocketGuard.js"
import { HandlersLive } from "./Handlers.js"
import { PlanterWireRpcs } from "../rpc/Rpcs.js"
import { ServerSerializationLive } from "../rpc/Serialization.js"

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

/**
 * The RPC server on the Unix socket at `socketPath`, serving PlanterWireRpcs
 * (PlanterRpcs with payloads decoded by the handlers) with HandlersLive.
 */
export const layer = (socketPath: string) =>
  RpcServer.layer(PlanterWireRpcs, { spanPrefix: "planterd" }).pipe(
    Layer.provide(HandlersLive),
    Layer.provide(RpcServer.layerProtocolSocketServer),
    Layer.provide(ServerSerializationLive),
    Layer.provide(socketServer(socketPath))
  )
