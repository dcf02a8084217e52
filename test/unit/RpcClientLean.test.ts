/**
 * The lean client (src/rpc/RpcClientLean.ts) against @effect/rpc's own
 * server (with the daemon's msgpack framing) on a temporary Unix socket: answers and typed errors, defects,
 * streams (as a Stream and as a Mailbox, with acks past the buffer),
 * interrupts reaching the server, the client span and its trace ids
 * reaching the server's span, and a connect that fails.
 */
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Rpc from "@effect/rpc/Rpc"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcGroup from "@effect/rpc/RpcGroup"
import * as RpcServer from "@effect/rpc/RpcServer"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Chunk, Deferred, Effect, Exit, Fiber, Layer, Option, Schema, Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as RpcClientLean from "../../src/rpc/RpcClientLean.js"
import {
  clientSerialization,
  makeMsgPack,
  MAX_RESPONSE_FRAME_BYTES,
  ServerSerializationLive
} from "../../src/rpc/Serialization.js"
import { recordingTracer } from "../support/tracing.js"

class Refused extends Schema.TaggedError<Refused>()("Refused", { message: Schema.String }) {}

class Greeting extends Schema.Class<Greeting>("Greeting")({ text: Schema.String, length: Schema.Number }) {}

class TestRpcs extends RpcGroup.make(
  Rpc.make("Greet", { payload: { name: Schema.String }, success: Greeting }),
  Rpc.make("Refuse", { error: Refused }),
  Rpc.make("Crash"),
  Rpc.make("Hang"),
  Rpc.make("Count", { payload: { upTo: Schema.Number }, success: Schema.Number, stream: true }),
  Rpc.make("Trace", { success: Schema.Struct({ traceId: Schema.String, parentSpanId: Schema.String }) }),
  Rpc.make("Lie", { success: Schema.Number })
) {}

interface Signals {
  readonly hangStarted: Deferred.Deferred<void>
  readonly hangInterrupted: Deferred.Deferred<void>
}

const handlers = (signals: Signals) =>
  TestRpcs.toLayer({
    Greet: ({ name }) => Effect.succeed(new Greeting({ text: `hello ${name}`, length: name.length })),
    Refuse: () => Effect.fail(new Refused({ message: "not today" })),
    Crash: () => Effect.die("boom"),
    Hang: () =>
      Deferred.succeed(signals.hangStarted, undefined).pipe(
        Effect.zipRight(Effect.never),
        Effect.onInterrupt(() => Deferred.succeed(signals.hangInterrupted, undefined))
      ),
    Count: ({ upTo }) => Stream.range(1, upTo),
    Trace: () =>
      Effect.map(Effect.currentSpan, (span) => ({
        traceId: span.traceId,
        parentSpanId: Option.match(span.parent, { onNone: () => "none", onSome: (parent) => parent.spanId })
      })).pipe(Effect.orDie),
    // Answers a value its success schema refuses: the client must not take it.
    Lie: () => Effect.succeed("not a number" as unknown as number)
  })

const tempSocketPath = Effect.gen(function*() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-lean-client-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
  return path.join(dir, "s.sock")
})

/** A server of TestRpcs on `socketPath` in this scope; answers its signals. */
const listen = (socketPath: string) =>
  Effect.gen(function*() {
    const signals: Signals = {
      hangStarted: yield* Deferred.make<void>(),
      hangInterrupted: yield* Deferred.make<void>()
    }
    yield* Layer.build(
      RpcServer.layer(TestRpcs).pipe(
        Layer.provide(handlers(signals)),
        Layer.provide(RpcServer.layerProtocolSocketServer),
        Layer.provide(ServerSerializationLive),
        Layer.provide(NodeSocketServer.layer({ path: socketPath }))
      )
    )
    return signals
  })

/** A server of TestRpcs on a fresh socket in this scope, and a client of it; answers its path and its signals. */
const serve = Effect.gen(function*() {
  const socketPath = yield* tempSocketPath
  const signals = yield* listen(socketPath)
  const client = yield* RpcClientLean.make(TestRpcs, { socketPath, serialization: clientSerialization })
  return { client, signals, socketPath }
})

describe("the lean RPC client", () => {
  it.scoped("answers a call with its decoded success, many calls on one connection", () =>
    Effect.gen(function*() {
      const { client } = yield* serve
      const greeting = yield* client.Greet({ name: "ada" })
      expect(greeting).toBeInstanceOf(Greeting)
      expect(greeting).toStrictEqual(new Greeting({ text: "hello ada", length: 3 }))
      const names = Array.from({ length: 50 }, (_, i) => `n${i}`)
      const all = yield* Effect.forEach(names, (name) => client.Greet({ name }), { concurrency: "unbounded" })
      expect(all.map((g) => g.text)).toStrictEqual(names.map((name) => `hello ${name}`))
    }))

  it.scoped("fails with the RPC's typed error, and dies with the server's defect", () =>
    Effect.gen(function*() {
      const { client } = yield* serve
      const refused = yield* Effect.flip(client.Refuse())
      expect(refused).toBeInstanceOf(Refused)
      expect(refused).toMatchObject({ _tag: "Refused", message: "not today" })
      const crashed = yield* Effect.exit(client.Crash())
      expect(Exit.isFailure(crashed) && Cause.isDie(crashed.cause)).toBe(true)
      if (Exit.isFailure(crashed)) expect(Cause.squash(crashed.cause)).toBe("boom")
    }))

  it.scoped("dies with the parse error when an answer does not match its schema", () =>
    Effect.gen(function*() {
      const { client } = yield* serve
      const lie = yield* Effect.exit(client.Lie())
      expect(Exit.isFailure(lie) && Cause.isDie(lie.cause)).toBe(true)
      if (Exit.isFailure(lie)) expect(String(Cause.squash(lie.cause))).toMatch(/Expected number/)
      // The connection is still good.
      expect((yield* client.Greet({ name: "b" })).text).toBe("hello b")
    }))

  it.scoped("streams every chunk, past the mailbox's buffer, as a Stream and as a Mailbox", () =>
    Effect.gen(function*() {
      const { client } = yield* serve
      const all = yield* Stream.runCollect(client.Count({ upTo: 500 }, { streamBufferSize: 4 }))
      expect(Chunk.toReadonlyArray(all)).toStrictEqual(Array.from({ length: 500 }, (_, i) => i + 1))
      const seen = yield* Effect.scoped(Effect.gen(function*() {
        const mailbox = yield* client.Count({ upTo: 40 }, { asMailbox: true, streamBufferSize: 2 })
        const values: Array<number> = []
        while (true) {
          const [chunk, done] = yield* mailbox.takeAll
          values.push(...chunk)
          if (done) return values
        }
      }))
      expect(seen).toStrictEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    }))

  it.scoped("sends Interrupt when a call is interrupted: the server's handler is interrupted", () =>
    Effect.gen(function*() {
      const { client, signals } = yield* serve
      const call = yield* Effect.fork(client.Hang())
      yield* Deferred.await(signals.hangStarted)
      yield* Fiber.interrupt(call)
      yield* Deferred.await(signals.hangInterrupted)
      expect((yield* client.Greet({ name: "after" })).text).toBe("hello after")
    }))

  it.scoped("sends the call's span ids: the server's span is a child of the client's RpcClient.<Rpc> span", () =>
    Effect.gen(function*() {
      const { client } = yield* serve
      const { made, tracer } = yield* recordingTracer
      const [outer, seen] = yield* Effect.withSpan(
        Effect.zip(Effect.currentSpan, client.Trace()),
        "outer"
      ).pipe(Effect.withTracer(tracer))
      const clientSpan = made.find((span) => span.name === "RpcClient.Trace")!
      expect(clientSpan).toBeDefined()
      expect(seen.traceId).toBe(outer.traceId)
      expect(clientSpan.traceId).toBe(outer.traceId)
      expect(seen.parentSpanId).toBe(clientSpan.spanId)
      expect(Option.map(clientSpan.parent, (parent) => parent.spanId)).toStrictEqual(Option.some(outer.spanId))
      expect(clientSpan.status._tag).toBe("Ended")
    }))

  it.scoped("fails with an RpcClientError whose cause says the connect failed, and why", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-lean-client-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const client = yield* RpcClientLean.make(TestRpcs, {
        socketPath: path.join(dir, "none.sock"),
        serialization: clientSerialization
      })
      const error = yield* Effect.flip(client.Greet({ name: "x" }))
      expect(error).toBeInstanceOf(RpcClientError)
      const cause = (error as RpcClientError).cause
      expect(cause).toBeInstanceOf(RpcClientLean.SocketError)
      expect(cause).toMatchObject({ reason: "Open", cause: { code: "ENOENT" } })
    }))

  it.scoped("fails the calls of a connection the server closed, and reconnects for the next call", () =>
    Effect.gen(function*() {
      const socketPath = yield* tempSocketPath
      const client = yield* RpcClientLean.make(TestRpcs, { socketPath, serialization: clientSerialization })
      const first = yield* Scope.make()
      const signals = yield* Scope.extend(listen(socketPath), first)
      expect((yield* client.Greet({ name: "one" })).text).toBe("hello one")
      const call = yield* Effect.fork(client.Hang())
      yield* Deferred.await(signals.hangStarted)
      yield* Scope.close(first, Exit.void)
      // Answered as interrupted by the server's shutdown, or failed with the connection: never left waiting.
      const hung = yield* Fiber.await(call)
      expect(Exit.isFailure(hung)).toBe(true)
      const down = yield* Effect.flip(client.Greet({ name: "down" }))
      expect(down).toBeInstanceOf(RpcClientError)
      yield* listen(socketPath)
      expect((yield* client.Greet({ name: "two" })).text).toBe("hello two")
    }))

  it.scoped("drops a connection whose answer it could not decode: the rest of that frame is never read as answers", () =>
    Effect.gen(function*() {
      const socketPath = yield* tempSocketPath
      // On its first connection, the server starts an answer larger than the client takes, then goes on with
      // that frame's bytes: an encoded answer to whatever the client asks next (say, a job's argv in a job list).
      let connections = 0
      const server = net.createServer((socket) => {
        const first = ++connections === 1
        const parser = makeMsgPack(1 << 20).unsafeMake()
        const answer = (requestId: string, text: string) =>
          parser.encode({
            _tag: "Exit",
            requestId,
            exit: { _tag: "Success", value: { text, length: 1 } }
          }) as Uint8Array
        let requests = 0
        socket.on("data", (data) => {
          for (const message of parser.decode(data) as Array<{ _tag: string; id: string }>) {
            if (message._tag !== "Request") continue
            if (!first) socket.write(answer(message.id, "honest"))
            else if (++requests === 1) {
              const declared = MAX_RESPONSE_FRAME_BYTES + 1
              socket.write(Buffer.from([0xc6, declared >>> 24, (declared >>> 16) & 255, (declared >>> 8) & 255, 255]))
            } else socket.write(answer(message.id, "smuggled"))
          }
        })
        socket.on("error", () => {})
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(socketPath, () => resume(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const client = yield* RpcClientLean.make(TestRpcs, { socketPath, serialization: clientSerialization })
      expect(yield* Effect.flip(client.Greet({ name: "one" }))).toBeInstanceOf(RpcClientError)
      const next = yield* Effect.either(client.Greet({ name: "two" }))
      expect(next._tag === "Right" ? next.right.text : "failed").not.toBe("smuggled")
      expect(connections).toBe(2)
    }))

  it.scoped("interrupts calls still waiting when its scope closes", () =>
    Effect.gen(function*() {
      const { signals, socketPath } = yield* serve
      const scope = yield* Scope.make()
      const client = yield* Scope.extend(
        RpcClientLean.make(TestRpcs, { socketPath, serialization: clientSerialization }),
        scope
      )
      const call = yield* Effect.fork(client.Hang())
      yield* Deferred.await(signals.hangStarted)
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(call)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(Exit.isInterrupted(yield* Effect.exit(client.Greet({ name: "late" })))).toBe(true)
    }))
})
