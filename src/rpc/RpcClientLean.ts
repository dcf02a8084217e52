/**
 * The typed client's RPC machinery: @effect/rpc's `RpcClient.make` over
 * `RpcClient.makeProtocolSocket` and `NodeSocket.makeNet` (as of @effect/rpc
 * 0.76), with the same messages on the wire, the same client shape and the
 * same semantics (the `RpcClient.<Rpc>` span and its trace ids sent with the
 * request, Interrupt sent when a call is interrupted, streams read through a
 * Mailbox with an Ack per chunk, defects, a Ping every 10 s), ported the way
 * src/layers/RpcServerLean.ts ported the server: the per-call work that made
 * the stock client allocate ~84 KB and burn ~120 µs of CPU per (warm) Health
 * call is taken out of the hot path: ~30 KB and ~70 µs here
 * (docs/benchmarks.md, "Health: the typed client's per-call path").
 *
 * Per call, the stock client ran a span with `Effect.useSpan`, a
 * `Runtime.make` and a forked fiber (under `withParentSpan`) to send the
 * request, the payload's `Schema.encode` under `Effect.locally` of the
 * caller's context, a latch and an `Effect.async` per socket write; per
 * socket read, a fiber (NodeSocket's FiberSet) to run the protocol's
 * handler, the answer's `Schema.decode` of the whole Exit schema under
 * `Effect.locally`, and a task to interrupt the already finished send
 * fiber. Here:
 *
 * - a call is one `Effect.async` in the caller's fiber: the request is
 *   encoded (`Schema.*Either`, synchronously; the wire group's
 *   `Schema.Unknown` and `Schema.Void` payloads are sent as they are) and
 *   written to the socket in its register function; its canceler sends the
 *   Interrupt;
 * - the span is made from the caller's fiber as `Effect.useSpan` makes it
 *   (parent, links, annotations, tracer and clock from that fiber) and ended
 *   with the call's Exit when the answer arrives or the call is interrupted;
 * - the socket is node's own: each read is decoded synchronously and each
 *   answer decoded (`Schema.*Either`; a success with the success schema
 *   alone, the same value the Exit schema makes) and handed to its caller's
 *   `resume`, with no fiber in between.
 *
 * Differences, all at the edges: the connection is opened by the first
 * request and, after it fails, by the next one (the stock protocol retried in
 * the background on a schedule, failing requests meanwhile); a chunk that
 * does not decode also tells the daemon to stop the stream; a caller whose
 * tracing is off sends no trace ids (the stock client sent a no-op span's
 * `"noop"` ids); the request context option is accepted and not used (no
 * payload schema here needs a service).
 */
import * as Headers from "@effect/platform/Headers"
import * as Rpc from "@effect/rpc/Rpc"
import type * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import type * as RpcSerialization from "@effect/rpc/RpcSerialization"
import {
  Cause,
  Chunk,
  Clock,
  Context,
  Data,
  Effect,
  Either,
  Exit,
  type Fiber,
  FiberId,
  FiberRef,
  HashMap,
  Mailbox,
  Option,
  type ParseResult,
  Schema,
  Scope,
  Stream,
  Tracer
} from "effect"
import * as DefaultServices from "effect/DefaultServices"
import { globalValue } from "effect/GlobalValue"
import * as net from "node:net"

/* eslint-disable @typescript-eslint/no-explicit-any -- payloads, answers and schemas are those of any RPC of the group, as in @effect/rpc's own client */

/**
 * Why the connection failed, as @effect/platform's Socket errors say it:
 * `Open` (the connect itself: its errno is the cause's `code`), `Read`,
 * `Write`, `Close` (the daemon closed it) or `OpenTimeout` (no Pong).
 */
export class SocketError extends Data.TaggedError("SocketError")<{
  readonly reason: "Open" | "Read" | "Write" | "Close" | "OpenTimeout"
  readonly cause?: unknown
}> {
  override get message() {
    const cause = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `${this.reason}${cause}`
  }
}

/** The headers every call of a fiber sends: @effect/rpc's own FiberRef, so `RpcClient.withHeaders` applies here too. */
export const currentHeaders: FiberRef.FiberRef<Headers.Headers> = globalValue(
  "@effect/rpc/RpcClient/currentHeaders",
  () => FiberRef.unsafeMake(Headers.empty)
)

const PING_INTERVAL_MS = 10_000

/** A connection's read buffer: node's own size for a socket read. */
const READ_BUFFER_BYTES = 64 * 1024

/** @effect/rpc's FiberId for "interrupted because the client went away" (its `fiberIdTransientInterrupt`). */
const fiberIdTransientInterrupt = FiberId.make(-503, 0)

const decodeDefect = Schema.decodeUnknownSync(Schema.Defect)

/** What a call of one RPC needs, made the first time that RPC is called. */
interface Codec {
  readonly rpc: Rpc.AnyWithProps
  readonly spanName: string
  readonly isStream: boolean
  /** Undefined: the payload is sent as it is (`Schema.Unknown`, `Schema.Void`). */
  readonly encodePayload: ((u: unknown) => Either.Either<unknown, ParseResult.ParseError>) | undefined
  readonly decodeExit: (u: unknown) => Either.Either<Exit.Exit<any, any>, ParseResult.ParseError>
  readonly decodeChunk:
    | ((u: unknown) => Either.Either<ReadonlyArray<unknown>, ParseResult.ParseError>)
    | undefined
}

const sentAsIs = (schema: Schema.Schema.All) =>
  schema.ast._tag === "UnknownKeyword" || schema.ast._tag === "VoidKeyword"

/**
 * Decodes an RPC's Exit as `Schema.decodeUnknownEither(Rpc.exitSchema(rpc))`
 * does. A success, nearly every answer, is decoded with the success schema
 * alone (the Exit schema's union and transformation are a third of the
 * work); anything else goes through the whole schema.
 */
export const makeExitDecoder = (rpc: Rpc.AnyWithProps) => {
  const decodeExit = Schema.decodeUnknownEither(Rpc.exitSchema(rpc as any) as Schema.Schema<any, unknown>)
  const streaming = RpcSchema.isStreamSchema(rpc.successSchema)
  const decodeValue = Schema.decodeUnknownEither(
    (streaming ? Schema.Void : rpc.successSchema) as Schema.Schema<unknown, unknown>
  )
  return (encoded: unknown): Either.Either<Exit.Exit<any, any>, ParseResult.ParseError> => {
    if (typeof encoded === "object" && encoded !== null && (encoded as { _tag?: unknown })._tag === "Success") {
      return Either.map(decodeValue((encoded as { value?: unknown }).value), Exit.succeed)
    }
    return decodeExit(encoded)
  }
}

const makeCodec = (rpc: Rpc.AnyWithProps, spanPrefix: string): Codec => {
  const streamSchemas = RpcSchema.getStreamSchemas(rpc.successSchema.ast)
  return {
    rpc,
    spanName: `${spanPrefix}.${rpc._tag}`,
    isStream: Option.isSome(streamSchemas),
    encodePayload: sentAsIs(rpc.payloadSchema)
      ? undefined
      : Schema.encodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown>),
    decodeExit: makeExitDecoder(rpc),
    decodeChunk: Option.isSome(streamSchemas)
      ? Schema.decodeUnknownEither(
        Schema.NonEmptyArray(streamSchemas.value.success) as unknown as Schema.Schema<ReadonlyArray<unknown>>
      )
      : undefined
  }
}

/*
 * Why the per-call objects below are class instances and not object literals. V8 counts, per object or
 * array literal in the source (its allocation site), how many of its objects survive a scavenge; a site
 * whose objects all survived one scavenge at the young generation's full size is "pretenured" for good:
 * its objects are allocated in the old generation from then on. A per-call object allocated there dies
 * at once but, until the next full GC, keeps alive every young object it pointed to, which the next
 * scavenges copy and promote in turn: in the bench's client, sites that happened to be pretenured during
 * its warm-up (the `{ onFailure, onSuccess }` literal of Effect's `onInterrupt`, used by `Effect.async`
 * with a canceler; the Ended status of Effect's native span, which held the answer) made every scavenge
 * promote ~1.3 MB of calls' objects, ~10 % of all the client allocated, and take 3-4 ms instead of ~1
 * (docs/benchmarks.md, "Health: what the client's scavenges kept"). Objects made by `new` have no
 * allocation site, so nothing per call here can be pretenured, and nothing per call is built with
 * Effect combinators that take an options literal.
 */

/**
 * A unary call waiting for its answer: what answering it, interrupting it and ending its span need.
 * `Effect.matchCauseEffect` takes it as its handlers (it reads `onFailure` and `onSuccess`, and keeps
 * neither this object).
 */
class PendingCall {
  readonly _tag = "Effect"
  /** The caller's fiber's resume, from the call's `Effect.async`; cleared once used. */
  resume: ((exit: Exit.Exit<any, any>) => void) | undefined = undefined
  constructor(
    readonly id: string,
    readonly codec: Codec,
    readonly fiber: Fiber.RuntimeFiber<any, any>,
    public span: Tracer.Span | undefined,
    /** Forgets the call and, if it was still waiting, tells the daemon to stop it. */
    readonly abandon: (id: string) => void
  ) {}

  /** The answer (or the connection's end): ends the span, then resumes the caller. */
  complete(exit: Exit.Exit<any, any>) {
    const resume = this.resume
    this.resume = undefined
    this.endSpan(exit)
    if (resume !== undefined) resume(exit)
  }

  endSpan(exit: Exit.Exit<any, any>) {
    const span = this.span
    this.span = undefined
    if (span !== undefined) endSpan(this.fiber, span, exit)
  }

  /** The call failed or was interrupted; on interruption (what `Effect.onInterrupt` would run) the daemon is told. */
  readonly onFailure = (cause: Cause.Cause<any>): Effect.Effect<never, any> => {
    if (Cause.isInterruptedOnly(cause)) {
      this.resume = undefined
      this.endSpan(Exit.interrupt(FiberId.none))
      this.abandon(this.id)
    }
    return Exit.failCause(cause)
  }

  readonly onSuccess: (value: any) => Effect.Effect<any> = Exit.succeed
}

/** A streaming call: its chunks go to its Mailbox. */
class StreamEntry {
  readonly _tag = "Mailbox"
  constructor(readonly codec: Codec, readonly mailbox: Mailbox.Mailbox<any, any>) {}
}

type Entry = PendingCall | StreamEntry

/** A call's Request (see above: a class, not a literal). The fields are in the order the stock client sent them. */
class RequestMessage {
  readonly _tag = "Request"
  readonly id: string
  readonly tag: string
  readonly payload: unknown
  readonly traceId: string | undefined
  readonly spanId: string | undefined
  readonly sampled: boolean | undefined
  readonly headers: ReadonlyArray<[string, string]>
  constructor(
    id: string,
    tag: string,
    payload: unknown,
    span: Tracer.Span | undefined,
    headers: ReadonlyArray<[string, string]>
  ) {
    this.id = id
    this.tag = tag
    this.payload = payload
    this.traceId = span?.traceId
    this.spanId = span?.spanId
    this.sampled = span?.sampled
    this.headers = headers
  }
}

/** The connection and what was read of it: a failed or closed one is replaced by the next request. */
interface Connection {
  readonly socket: net.Socket
  readonly parser: ReturnType<RpcSerialization.RpcSerialization["Type"]["unsafeMake"]>
  opened: boolean
  failed: boolean
  /** A Ping went out and no Pong came back yet. */
  awaitingPong: boolean
}

interface CallOptions {
  readonly asMailbox?: boolean | undefined
  readonly streamBufferSize?: number | undefined
  readonly headers?: Headers.Input | undefined
  readonly context?: Context.Context<never> | undefined
  readonly discard?: boolean | undefined
}

export interface LeanClientOptions {
  /** The daemon's Unix socket. */
  readonly socketPath: string
  /**
   * The framing and encoding on the socket (Serialization.ts's `clientSerialization`). Its decode must keep
   * no view of the bytes it is handed: they are the connection's read buffer, which the next read overwrites.
   */
  readonly serialization: RpcSerialization.RpcSerialization["Type"]
  /** The calls' span names are `<spanPrefix>.<Rpc>`; default `RpcClient`, as @effect/rpc's. */
  readonly spanPrefix?: string | undefined
  readonly disableTracing?: boolean | undefined
}

/**
 * The span `Effect.useSpan(name, { captureStackTrace: false }, …)` makes in
 * `fiber`; undefined when the fiber's tracing is off or its context stops
 * propagation (where useSpan makes a no-op span).
 */
const makeSpan = (fiber: Fiber.RuntimeFiber<any, any>, name: string): Tracer.Span | undefined => {
  const context = fiber.currentContext
  if (!fiber.getFiberRef(FiberRef.currentTracerEnabled) || Context.get(context, Tracer.DisablePropagation)) {
    return undefined
  }
  const services = fiber.getFiberRef(DefaultServices.currentServices)
  const timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
  const links = fiber.getFiberRef(FiberRef.currentTracerSpanLinks)
  const span = Context.get(services, Tracer.Tracer).span(
    name,
    parentOf(Context.getOption(context, Tracer.ParentSpan)),
    Context.empty(),
    Chunk.isEmpty(links) ? [] : Chunk.toReadonlyArray(links),
    timing ? Context.get(services, Clock.Clock).unsafeCurrentTimeNanos() : BigInt(0),
    "internal"
  )
  const annotations = fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations)
  if (HashMap.size(annotations) > 0) {
    for (const [key, value] of HashMap.toEntries(annotations)) span.attribute(key, value)
  }
  return span
}

/** The nearest ancestor span whose context does not stop propagation (Effect's `filterDisablePropagation`). */
const parentOf = (span: Option.Option<Tracer.AnySpan>): Option.Option<Tracer.AnySpan> => {
  if (Option.isNone(span) || !Context.get(span.value.context, Tracer.DisablePropagation)) return span
  return span.value._tag === "Span" ? parentOf(span.value.parent) : Option.none()
}

/**
 * Ends a call's span with its Exit; a success as `Exit.void`: a span's status tells success from failure
 * and a tracer reads no more of a success, while the answer itself would live as long as the span does
 * (an exporter's batch; the whole answer promoted with a pretenured status, see above).
 */
const endSpan = (fiber: Fiber.RuntimeFiber<any, any>, span: Tracer.Span, exit: Exit.Exit<unknown, unknown>) => {
  if (span.status._tag === "Ended") return
  const timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
  const clock = Context.get(fiber.getFiberRef(DefaultServices.currentServices), Clock.Clock)
  span.end(timing ? clock.unsafeCurrentTimeNanos() : BigInt(0), Exit.isSuccess(exit) ? Exit.void : exit)
}

const headersOf = (fiber: Fiber.RuntimeFiber<any, any>, input: Headers.Input | undefined) => {
  const inherited = fiber.getFiberRef(currentHeaders)
  const headers = input === undefined ? inherited : Headers.merge(inherited, Headers.fromInput(input))
  return Object.entries(headers)
}

/** A call's Request: its encoded payload, its span's trace ids (the daemon's span descends from it), its headers. */
const requestMessage = (
  fiber: Fiber.RuntimeFiber<any, any>,
  codec: Codec,
  id: string,
  payload: unknown,
  span: Tracer.Span | undefined,
  opts: CallOptions | undefined
): FromClientEncoded =>
  new RequestMessage(id, codec.rpc._tag, payload, span, headersOf(fiber, opts?.headers)) as unknown as FromClientEncoded

/**
 * A client of `group` on the daemon's socket, connected by its first
 * request, closed with the scope it is made in (calls still waiting are
 * interrupted, as @effect/rpc's are).
 */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: LeanClientOptions
): Effect.Effect<RpcClient.RpcClient<Rpcs, RpcClientError>, never, Scope.Scope> =>
  Effect.flatMap(Scope.Scope, (scope) => {
    const spanPrefix = options.spanPrefix ?? "RpcClient"
    const tracing = options.disableTracing !== true
    const codecs = new Map<Rpc.AnyWithProps, Codec>()
    const entries = new Map<string, Entry>()
    let lastId = 0
    let connection: Connection | undefined
    let isShutdown = false

    const codecOf = (rpc: Rpc.AnyWithProps) => {
      let codec = codecs.get(rpc)
      if (codec === undefined) {
        codec = makeCodec(rpc, spanPrefix)
        codecs.set(rpc, codec)
      }
      return codec
    }

    /** Every call still waiting fails with `exit`; streams end with it. */
    const failEntries = (exit: Exit.Exit<never, unknown>) => {
      for (const [id, entry] of entries) {
        entries.delete(id)
        if (entry._tag === "Effect") entry.complete(exit)
        else entry.mailbox.unsafeDone(exit)
      }
    }

    const connectionFailed = (current: Connection, error: SocketError) => {
      if (current.failed) return
      current.failed = true
      if (connection === current) connection = undefined
      current.socket.destroy()
      failEntries(Exit.fail(new RpcClientError({ reason: "Protocol", message: "Error in socket", cause: error })))
    }

    const open = (): Connection => {
      // Reads land in one buffer per connection (the serialization copies out what it keeps), not a fresh
      // 64 KiB one per read: at disk speed those were 16 allocations of external memory per MiB, for which V8
      // ran full collections (docs/benchmarks.md, "LogsRead: the fallback path").
      const socket = net.createConnection({
        path: options.socketPath,
        onread: {
          buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
          callback: (length, buffer) => {
            receive(current, buffer.subarray(0, length))
            return true
          }
        }
      })
      const current: Connection = {
        socket,
        parser: options.serialization.unsafeMake(),
        opened: false,
        failed: false,
        awaitingPong: false
      }
      socket.once("connect", () => {
        current.opened = true
      })
      socket.on(
        "error",
        (cause) => connectionFailed(current, new SocketError({ reason: current.opened ? "Read" : "Open", cause }))
      )
      // The daemon ended its side: as @effect/rpc's socket, the connection is over (nothing more will be answered).
      socket.on("end", () => connectionFailed(current, new SocketError({ reason: "Close" })))
      socket.on("close", () => connectionFailed(current, new SocketError({ reason: "Close" })))
      return current
    }

    /** Writes one message; a connection that fails fails every call waiting on it, this one included. */
    const send = (message: FromClientEncoded): void => {
      if (connection === undefined) connection = open()
      const bytes = connection.parser.encode(message)
      if (bytes !== undefined) connection.socket.write(bytes)
    }

    const sendIfConnected = (message: FromClientEncoded): void => {
      if (connection !== undefined) send(message)
    }

    const receive = (current: Connection, bytes: Uint8Array) => {
      let messages: ReadonlyArray<FromServerEncoded>
      try {
        messages = current.parser.decode(bytes) as ReadonlyArray<FromServerEncoded>
      } catch (defect) {
        // Past a frame it could not read (one larger than the client takes, or garbage) the connection is out of
        // step: the rest of that frame's bytes (a job's argv, a log's bytes) must never be read as answers.
        if (!current.failed) {
          current.failed = true
          if (connection === current) connection = undefined
          current.socket.destroy()
        }
        failEntries(Exit.fail(
          new RpcClientError({ reason: "Protocol", message: "Error decoding message", cause: Cause.fail(defect) })
        ))
        return
      }
      for (const message of messages) {
        switch (message._tag) {
          case "Exit":
            onExit(message.requestId, message.exit)
            break
          case "Chunk":
            onChunk(message.requestId, message.values)
            break
          case "Defect":
            failEntries(Exit.die(decodeDefect(message.defect)))
            break
          case "Pong":
            current.awaitingPong = false
            break
        }
      }
    }

    const onExit = (requestId: string, encoded: unknown) => {
      const entry = entries.get(requestId)
      if (entry === undefined) return
      entries.delete(requestId)
      const decoded = entry.codec.decodeExit(encoded)
      const exit = Either.isRight(decoded) ? decoded.right : Exit.die(decoded.left)
      if (entry._tag === "Effect") entry.complete(exit)
      else entry.mailbox.unsafeDone(Exit.asVoid(exit))
    }

    const onChunk = (requestId: string, values: ReadonlyArray<unknown>) => {
      const entry = entries.get(requestId)
      if (entry === undefined || entry._tag !== "Mailbox" || entry.codec.decodeChunk === undefined) return
      const decoded = entry.codec.decodeChunk(values)
      if (Either.isLeft(decoded)) {
        entries.delete(requestId)
        entry.mailbox.unsafeDone(Exit.die(decoded.left))
        sendIfConnected({ _tag: "Interrupt", requestId })
        return
      }
      // The daemon sends the next chunk after this Ack: one chunk in flight per stream, the Mailbox bounds the rest.
      const ack = () => {
        if (entries.has(requestId)) sendIfConnected({ _tag: "Ack", requestId })
      }
      const rest = entry.mailbox.unsafeOfferAll(decoded.right)
      if (Chunk.isEmpty(rest)) return ack()
      Effect.runFork(Effect.map(entry.mailbox.offerAll(rest), ack))
    }

    const nextId = () => String(++lastId)

    const abandon = (id: string) => {
      if (entries.delete(id)) sendIfConnected({ _tag: "Interrupt", requestId: id })
    }

    const effectCall = (codec: Codec, payload: unknown, opts: CallOptions | undefined) =>
      Effect.withFiberRuntime<any, any>((fiber) => {
        if (isShutdown) return Effect.interrupt
        let encoded = payload
        if (codec.encodePayload !== undefined) {
          const result = codec.encodePayload(payload)
          if (Either.isLeft(result)) return Effect.die(result.left)
          encoded = result.right
        }
        const span = tracing ? makeSpan(fiber, codec.spanName) : undefined
        const id = nextId()
        const request = requestMessage(fiber, codec, id, encoded, span, opts)
        if (opts?.discard === true) {
          send(request)
          if (span !== undefined) endSpan(fiber, span, Exit.void)
          return Effect.void
        }
        // What `Effect.async` with a canceler does (`onInterrupt`: an uninterruptible region that runs the
        // canceler when the wait is interrupted), with the call itself as the handlers: no options literal.
        const call = new PendingCall(id, codec, fiber, span, abandon)
        return Effect.uninterruptibleMask((restore) =>
          Effect.matchCauseEffect(
            restore(Effect.async<any, any>((resume) => {
              call.resume = resume
              entries.set(id, call)
              send(request)
            })),
            call
          )
        )
      })

    const streamCall = (codec: Codec, payload: unknown, opts: CallOptions | undefined) =>
      Effect.withFiberRuntime<Mailbox.ReadonlyMailbox<any, any>, never, Scope.Scope>((fiber) => {
        if (isShutdown) return Effect.interrupt
        const callScope = Context.unsafeGet(fiber.currentContext, Scope.Scope)
        const span = tracing ? makeSpan(fiber, codec.spanName) : undefined
        const id = nextId()
        return Effect.flatMap(Mailbox.make<any, any>(opts?.streamBufferSize ?? 16), (mailbox) =>
          Effect.as(
            Scope.addFinalizerExit(callScope, (exit) =>
              Effect.sync(() => {
                if (entries.delete(id)) sendIfConnected({ _tag: "Interrupt", requestId: id })
                if (span !== undefined) endSpan(fiber, span, exit)
              })),
            (() => {
              const encoded = codec.encodePayload === undefined ? Either.right(payload) : codec.encodePayload(payload)
              if (Either.isLeft(encoded)) {
                mailbox.unsafeDone(Exit.die(encoded.left))
                return mailbox
              }
              entries.set(id, new StreamEntry(codec, mailbox))
              send(requestMessage(fiber, codec, id, encoded.right, span, opts))
              return mailbox
            })()
          ))
      })

    const method = (rpc: Rpc.AnyWithProps) => (payload: unknown, opts?: CallOptions) => {
      const codec = codecOf(rpc)
      const made = rpc.payloadSchema.make ? rpc.payloadSchema.make(payload) : payload
      if (!codec.isStream) return effectCall(codec, made, opts)
      const mailbox = streamCall(codec, made, opts)
      if (opts?.asMailbox === true) return mailbox
      return Stream.unwrapScoped(Effect.map(mailbox, Mailbox.toStream))
    }

    const client: Record<string, any> = {}
    for (const rpc of group.requests.values() as Iterable<Rpc.AnyWithProps>) {
      const dot = rpc._tag.indexOf(".")
      if (dot === -1) {
        client[rpc._tag] = method(rpc)
      } else {
        const prefix = rpc._tag.slice(0, dot)
        client[prefix] ??= {}
        client[prefix][rpc._tag.slice(dot + 1)] = method(rpc)
      }
    }

    // @effect/rpc's pinger: a Ping every 10 s; a connection that left the last one unanswered is dropped.
    const pinger = setInterval(() => {
      const current = connection
      if (current === undefined) return
      if (current.awaitingPong) {
        connectionFailed(current, new SocketError({ reason: "OpenTimeout", cause: new Error("ping timeout") }))
        return
      }
      current.awaitingPong = true
      send({ _tag: "Ping" })
    }, PING_INTERVAL_MS)
    pinger.unref()

    return Effect.as(
      Scope.addFinalizer(
        scope,
        Effect.sync(() => {
          isShutdown = true
          clearInterval(pinger)
          failEntries(Exit.interrupt(fiberIdTransientInterrupt))
          const current = connection
          connection = undefined
          if (current !== undefined) {
            current.failed = true
            current.socket.destroySoon()
          }
        })
      ),
      client as RpcClient.RpcClient<Rpcs, RpcClientError>
    )
  })
