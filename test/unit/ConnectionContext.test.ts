import * as Rpc from "@effect/rpc/Rpc"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import type { FromServerEncoded } from "@effect/rpc/RpcMessage"
import { Protocol } from "@effect/rpc/RpcServer"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Mailbox, Option, type Runtime, Schema } from "effect"
import { ConnectionContext } from "../../src/layers/ConnectionContext.js"
import { RequestDispatch } from "../../src/layers/RequestDispatch.js"
import * as RpcServerLean from "../../src/layers/RpcServerLean.js"

/** What a connection's requests are served as: a stand-in for the CallerMiddleware's Caller. */
class Peer extends Context.Tag("test/Peer")<Peer, { readonly uid: number }>() {}

const Who = Rpc.make("Who", { success: Schema.Number })
const Group = RpcGroup.make(Who)
/** The uid of the Peer the request's context has; -1 without one. */
const Handlers = Group.toLayer({
  Who: () => Effect.map(Effect.serviceOption(Peer), Option.match({ onNone: () => -1, onSome: (peer) => peer.uid }))
})

/**
 * RpcServerLean on an in-memory protocol: requests handed to its synchronous entry (as PeerSocketProtocol
 * does), each connection with a runtime of its own; answers collected by connection.
 */
const serve = Effect.gen(function*() {
  const answers = new Map<number, Array<FromServerEncoded>>()
  const looked: Array<number> = []
  const protocol = yield* Protocol.make(() =>
    Effect.gen(function*() {
      return {
        disconnects: yield* Mailbox.make<number>(),
        send: (clientId: number, response: FromServerEncoded) =>
          Effect.sync(() => {
            answers.set(clientId, [...(answers.get(clientId) ?? []), response])
          }),
        end: () => Effect.void,
        clientIds: Effect.sync(() => new Set(answers.keys())),
        initialMessage: Effect.succeedNone,
        supportsAck: true,
        supportsTransferables: false,
        supportsSpanPropagation: true
      }
    })
  )
  const dispatch: Context.Tag.Service<RequestDispatch> = { request: undefined }
  const connectionContext = ConnectionContext.of({
    forClient: (clientId) => {
      looked.push(clientId)
      return clientId === 3 ? Context.empty() : Context.make(Peer, { uid: 1000 + clientId })
    }
  })
  yield* Layer.launch(RpcServerLean.layer(Group)).pipe(
    Effect.provide(Handlers),
    Effect.provideService(Protocol, protocol),
    Effect.provideService(ConnectionContext, connectionContext),
    Effect.provideService(RequestDispatch, dispatch),
    Effect.forkScoped
  )
  while (dispatch.request === undefined) yield* Effect.sleep("1 millis")
  const connections = new Map<number, Runtime.Runtime<never>>()
  const request = (clientId: number, id: string) =>
    Effect.gen(function*() {
      if (!connections.has(clientId)) connections.set(clientId, yield* Effect.runtime<never>())
      const rest = dispatch.request!(
        clientId,
        { _tag: "Request", id, tag: "Who", payload: undefined, headers: [] },
        connections.get(clientId)!
      )
      if (rest !== undefined) yield* rest
    })
  return { answers, looked, request }
})

const values = (answers: ReadonlyArray<FromServerEncoded>) =>
  answers.map((answer) => answer._tag === "Exit" ? answer.exit : answer)

describe("ConnectionContext", () => {
  it.scopedLive("gives each connection's requests its services, worked out once per connection", () =>
    Effect.gen(function*() {
      const { answers, looked, request } = yield* serve
      for (const id of ["1", "2", "3"]) {
        yield* request(1, id)
        yield* request(2, id)
      }
      yield* Effect.sleep("20 millis")
      expect(values(answers.get(1)!)).toStrictEqual([1001, 1001, 1001].map((value) => ({ _tag: "Success", value })))
      expect(values(answers.get(2)!)).toStrictEqual([1002, 1002, 1002].map((value) => ({ _tag: "Success", value })))
      expect(looked).toStrictEqual([1, 2])
    }))

  it.scopedLive("adds nothing for a connection it has nothing for", () =>
    Effect.gen(function*() {
      const { answers, request } = yield* serve
      yield* request(3, "1")
      yield* Effect.sleep("20 millis")
      expect(values(answers.get(3)!)).toStrictEqual([{ _tag: "Success", value: -1 }])
    }))
})
