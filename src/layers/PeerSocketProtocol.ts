import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import { ResponseDefectEncoded } from "@effect/rpc/RpcMessage"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import type { Runtime } from "effect"
import { Context, Effect, FiberSet, Layer, Mailbox, Option, Predicate, Scope } from "effect"
import type { FrameRejected } from "../rpc/FrameScanner.js"
import type { ConnectionLimits } from "./ConnectionGate.js"
import { ConnectionGate, DEFAULT_CONNECTION_LIMITS } from "./ConnectionGate.js"
import type { PeerCredentials } from "./PeerCredentials.js"
import * as PeerCredentialsNative from "./PeerCredentials.js"
import { RequestDispatch } from "./RequestDispatch.js"

/**
 * The peer credentials of each open connection, by the RPC server's
 * clientId: written when a connection is accepted (before any of its bytes
 * are read), removed when it closes. The CallerMiddleware reads it.
 */
export class PeerRegistry extends Context.Tag("planter/PeerRegistry")<PeerRegistry, {
  readonly get: (clientId: number) => PeerCredentials | undefined
}>() {}

/**
 * @effect/rpc's socket-server protocol (RpcServer.makeProtocolSocketServer),
 * with one addition: each accepted connection's peer credentials are read
 * from its fd first, and recorded under the clientId this protocol gives
 * it. A connection whose credentials cannot be read is closed unanswered.
 * Owning the clientId here is what makes the mapping exact: no ordering
 * between accepting and @effect/rpc's own numbering is assumed.
 */
export const make = (options: {
  readonly limits?: ConnectionLimits | undefined
  /** The request tags the server answers with an Exit (others get a defect, and take no slot). */
  readonly tags?: ReadonlySet<string> | undefined
  /** Called on every read from any peer, before it is decoded (IdleCompaction's clock). */
  readonly onActivity?: (() => void) | undefined
} = {}) =>
  Effect.gen(function*() {
    const limits = options.limits ?? DEFAULT_CONNECTION_LIMITS
    const onActivity = options.onActivity
    const counts = (request: Extract<FromClientEncoded, { _tag: "Request" }>) =>
      (typeof request.id === "string" || typeof request.id === "bigint") &&
      (options.tags === undefined || options.tags.has(request.tag))
    const server = yield* SocketServer.SocketServer
    const serialization = yield* RpcSerialization.RpcSerialization
    const disconnects = yield* Mailbox.make<number>()
    yield* PeerCredentialsNative.ensureLoaded

    let nextId = 0
    const clients = new Map<number, { readonly write: (response: FromServerEncoded) => Effect.Effect<void> }>()
    const peers = new Map<number, PeerCredentials>()
    const clientIds = new Set<number>()
    let writeRequest!: (clientId: number, message: FromClientEncoded) => Effect.Effect<void>
    const requestDispatch: Context.Tag.Service<RequestDispatch> = { request: undefined }

    const onSocket = (socket: Socket.Socket) =>
      Effect.gen(function*() {
        // Provided per connection by NodeSocketServer.
        const conn = yield* Effect.serviceOption(NodeSocket.NetSocket)
        if (Option.isNone(conn)) return yield* Effect.logError("a connection without its net.Socket: closed")
        const peer = yield* Effect.either(PeerCredentialsNative.read(conn.value))
        if (peer._tag === "Left") {
          yield* Effect.logWarning(`closing an unauthenticated connection: ${peer.left.message}`)
          yield* Effect.sync(() => conn.value.destroy())
          return
        }
        const scope = yield* Effect.scope
        const parser = serialization.unsafeMake()
        const id = nextId++
        peers.set(id, peer.right)
        yield* Scope.addFinalizerExit(scope, () => {
          clientIds.delete(id)
          clients.delete(id)
          peers.delete(id)
          return disconnects.offer(id)
        })

        const writeRaw = yield* socket.writer
        const net = conn.value
        const runFork = yield* FiberSet.makeRuntime<never>()
        const gate = new ConnectionGate(limits, (request) => counts(request), (reading) => {
          if (reading) net.resume()
          else net.pause()
        })
        /** Hands messages to the server one after the other, in order. */
        const dispatch = (messages: ReadonlyArray<FromClientEncoded>) => {
          if (messages.length === 0) return Effect.void
          let i = 0
          return Effect.whileLoop({
            while: () => i < messages.length,
            body: () => writeRequest(id, messages[i++]!),
            step: () => {}
          })
        }
        /** The connection's runtime, once its socket is read: what its requests' fibers are forked from. */
        let connection: Runtime.Runtime<never> | undefined
        /** Messages the gate let go (a slot was freed): requests straight to the server, the rest in a fiber. */
        const release = (ready: ReadonlyArray<FromClientEncoded>) => {
          if (ready.length === 0) return
          const rest = connection === undefined ? dispatch(ready) : dispatchRead(ready, connection)
          if (rest !== undefined) runFork(rest)
        }
        // The peer took what was queued: waiting requests may go, and the socket be read again.
        const onDrain = () => release(gate.responseBytes(net.writableLength))
        net.on("drain", onDrain)
        yield* Effect.addFinalizer(() => Effect.sync(() => net.off("drain", onDrain)))

        /**
         * Writes an answer; once the socket has taken it, its request's slot is free. The request's fiber
         * does not wait for that (it would be suspended and resumed once more per answer): the slot is
         * freed, and what waited for it let go, by the write's callback.
         */
        const writeEncoded = (response: FromServerEncoded, encoded: Uint8Array) =>
          Effect.suspend(() => {
            if (net.destroyed) return dispatch(gate.written(response, net.writableLength))
            // A failed write means the connection is going away; its scope ends everything.
            net.write(encoded, () => release(gate.written(response, net.writableLength)))
            // Past the cap the socket is no longer read: stop taking requests from a peer that does not read.
            gate.queuedBytes(net.writableLength)
            return Effect.void
          })
        const write = (response: FromServerEncoded) => {
          try {
            const encoded = parser.encode(response)
            if (encoded === undefined) return Effect.void
            return writeEncoded(response, encoded as Uint8Array)
          } catch (cause) {
            return writeEncoded(response, parser.encode(ResponseDefectEncoded(cause)) as Uint8Array)
          }
        }
        clientIds.add(id)
        clients.set(id, { write })

        /**
         * Hands a socket read's messages to the server: requests straight to
         * its synchronous entry once it runs (no fiber per read, which cost
         * ~5 KB and a FiberSet entry each), in order; whatever is left to run
         * (another kind of message, and all after it) as one effect.
         */
        const dispatchRead = (messages: ReadonlyArray<FromClientEncoded>, runtime: Runtime.Runtime<never>) => {
          const serve = requestDispatch.request
          if (serve === undefined) return dispatch(messages)
          for (let i = 0; i < messages.length; i++) {
            const message = messages[i]!
            if (message._tag !== "Request") return dispatch(messages.slice(i))
            const rest = serve(id, message, runtime)
            if (rest !== undefined) {
              return i + 1 < messages.length ? Effect.zipRight(rest, dispatch(messages.slice(i + 1))) : rest
            }
          }
          return undefined
        }

        // The runtime requests are forked from: this connection's (log annotations below included).
        yield* Effect.flatMap(Effect.runtime<never>(), (runtime) => {
          connection = runtime
          return socket.runRaw((data) => {
            onActivity?.()
            try {
              const decoded = parser.decode(data) as ReadonlyArray<FromClientEncoded>
              if (decoded.length === 0) return Effect.void
              const ready: Array<FromClientEncoded> = []
              for (const message of decoded) ready.push(...gate.receive(message))
              return dispatchRead(ready, runtime)
            } catch (cause) {
              if (Predicate.isTagged(cause, "FrameRejected")) {
                return Effect.zipRight(
                  Effect.logWarning(
                    `closing a connection (uid ${peer.right.uid}, pid ${peer.right.pid ?? "?"}): ${
                      (cause as FrameRejected).message
                    }`
                  ),
                  writeRaw(new Socket.CloseEvent(1009, (cause as FrameRejected).message))
                )
              }
              if (Predicate.isTagged(cause, "RpcSerializationError")) {
                return writeRaw(new Socket.CloseEvent(1009, (cause as RpcSerialization.RpcSerializationError).message))
              }
              return writeRaw(parser.encode(ResponseDefectEncoded(cause))!)
            }
          })
        }).pipe(
          Effect.interruptible,
          Effect.catchIf((error) => error.reason === "Close", () => Effect.void),
          Effect.orDie,
          Effect.withUnhandledErrorLogLevel(Option.none()),
          // How `planter debug fibers` names this connection's fiber.
          Effect.annotateLogs({
            "planter.fiber": "connection",
            "planter.peer.uid": peer.right.uid,
            "planter.peer.pid": peer.right.pid ?? "unknown"
          })
        )
      })

    const protocol = yield* RpcServer.Protocol.make((writeRequest_) => {
      writeRequest = writeRequest_
      return Effect.succeed({
        disconnects,
        send: (clientId, response) => {
          const client = clients.get(clientId)
          if (!client) return Effect.void
          // Cannot fail: an answer that does not encode is written as a defect, and a failed write ends the connection.
          return client.write(response)
        },
        end: (_clientId) => Effect.void,
        clientIds: Effect.sync(() => clientIds),
        initialMessage: Effect.succeedNone,
        supportsAck: true,
        supportsTransferables: false,
        supportsSpanPropagation: true
      })
    })

    yield* server.run((socket) => Effect.scoped(onSocket(socket))).pipe(Effect.interruptible, Effect.forkScoped)

    return {
      protocol,
      registry: PeerRegistry.of({ get: (clientId) => peers.get(clientId) }),
      requestDispatch
    }
  })

/** The RPC protocol on the socket server, the registry of its connections' peers, and the server's request entry. */
export const layer = (options?: Parameters<typeof make>[0]): Layer.Layer<
  RpcServer.Protocol | PeerRegistry | RequestDispatch,
  PeerCredentialsNative.PeerCredentialsError,
  RpcSerialization.RpcSerialization | SocketServer.SocketServer
> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ protocol, registry, requestDispatch }) =>
      Context.make(RpcServer.Protocol, protocol).pipe(
        Context.add(PeerRegistry, registry),
        Context.add(RequestDispatch, requestDispatch)
      ))
  )
