import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as SocketServer from "@effect/platform/SocketServer"
import { Effect, Layer } from "effect"
import { PlanterWireRpcs } from "../rpc/Rpcs.js"
import { ServerSerializationLive } from "../rpc/Serialization.js"
import type { AuthzPolicy } from "../services/Authz.js"
import * as CallerMiddlewareLive from "./CallerMiddlewareLive.js"
import { HandlersLive } from "./Handlers.js"
import { IdleCompaction } from "./IdleCompaction.js"
import * as PeerSocketProtocol from "./PeerSocketProtocol.js"
import * as RpcServerLean from "./RpcServerLean.js"
import { checkSocketDir, claimSocketPath, secureAndRemoveOnClose, withPrivateUmask } from "./SocketGuard.js"

/**
 * Checks the socket's directory, claims the path, listens, then gives the
 * socket the mode and group the policy needs and verifies them; closing
 * unlinks it first, then stops the server.
 */
const socketServer = (socketPath: string, policy: AuthzPolicy, stateDir: string) =>
  Layer.scoped(
    SocketServer.SocketServer,
    Effect.gen(function*() {
      const dir = yield* checkSocketDir(socketPath, policy, stateDir)
      yield* claimSocketPath(socketPath, dir)
      const server = yield* withPrivateUmask(NodeSocketServer.make({ path: socketPath }))
      yield* secureAndRemoveOnClose(socketPath, policy)
      return server
    })
  )

/**
 * The RPC server on the Unix socket at `socketPath`, serving PlanterWireRpcs
 * (PlanterRpcs with payloads decoded by the handlers) with HandlersLive,
 * every request going through the CallerMiddleware (peer credentials read
 * at accept time → role → Caller, audit). The server is RpcServerLean:
 * @effect/rpc's, with less work per request. Every read from a peer tells
 * IdleCompaction the daemon is not quiet.
 */
export const layer = (socketPath: string, policy: AuthzPolicy, stateDir: string) =>
  RpcServerLean.layer(PlanterWireRpcs, { spanPrefix: "planterd" }).pipe(
    Layer.provide(HandlersLive),
    Layer.provide(CallerMiddlewareLive.layer),
    Layer.provideMerge(Layer.unwrapEffect(Effect.map(IdleCompaction, (idle) =>
      PeerSocketProtocol.layer({
        tags: new Set(PlanterWireRpcs.requests.keys()),
        onActivity: idle.noteActivity
      })))),
    Layer.provide(ServerSerializationLive),
    Layer.provide(socketServer(socketPath, policy, stateDir))
  )
