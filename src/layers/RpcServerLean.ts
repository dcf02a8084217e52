/**
 * The daemon's RPC server: @effect/rpc's `RpcServer.make` (with
 * `makeNoSerialization`) as of @effect/rpc 0.76, same messages, same
 * semantics (one fiber per request, interrupts, stream acks, defects,
 * client ends, shutdown, the `<prefix>.<Rpc>` span around every request),
 * with the per-request work that made it allocate ~150 KB per Health call
 * taken out of the hot path (docs/benchmarks.md, "Health: the per-request
 * path"):
 *
 * - payloads and answers are decoded and encoded synchronously
 *   (`Schema.*Either`) instead of in an Effect run under `Effect.provide` of
 *   the handlers' whole context (a Context merge, a FiberRef `locally` and
 *   its acquire/use/release per request, twice); the wire group's
 *   `Schema.Unknown` payloads are not decoded at all (the handlers do it);
 * - the request fiber's context (the handler's merged with the
 *   connection's, and with what ConnectionContext gives that connection:
 *   its Caller) is built once per connection and RPC, not per request;
 * - the request's span is made before its fiber and put in the fiber's
 *   first context (no `withSpan`: its `provideService` copies the context
 *   and runs another acquire/use/release), and ended when the fiber ends;
 * - requests can be handed over without a fiber of their own
 *   (RequestDispatch): the request's fiber is then forked from the
 *   connection's runtime, not from a fiber made for each socket read.
 *
 * Only what the daemon uses is kept: unbounded concurrency (the connection
 * gate bounds it per connection), no transferables.
 */
import * as Headers from "@effect/platform/Headers"
import * as Rpc from "@effect/rpc/Rpc"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import type { FromClientEncoded } from "@effect/rpc/RpcMessage"
import { constPong, RequestId } from "@effect/rpc/RpcMessage"
import * as RpcSchema from "@effect/rpc/RpcSchema"
import { fiberIdClientInterrupt, fiberIdTransientInterrupt, Protocol } from "@effect/rpc/RpcServer"
import {
  Cause,
  Chunk,
  Context,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  FiberRefs,
  FiberSet,
  HashMap,
  Layer,
  Option,
  ParseResult,
  Runtime,
  RuntimeFlags,
  Schema,
  Scope,
  Stream,
  Tracer
} from "effect"
import * as DefaultServices from "effect/DefaultServices"
import { constTrue, constVoid } from "effect/Function"
import { ConnectionContext } from "./ConnectionContext.js"
import { RequestDispatch } from "./RequestDispatch.js"

/* eslint-disable @typescript-eslint/no-explicit-any -- handlers, payloads and schemas are those of any RPC of the group, as in @effect/rpc's own server */

interface Schemas {
  /** Undefined: the payload is `Schema.Unknown` or `Schema.Void`, taken as it came. */
  readonly decode: ((u: unknown) => Either.Either<unknown, ParseResult.ParseError>) | undefined
  readonly encodeChunk: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly encodeExit: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
  readonly encodeDefect: (u: unknown) => Either.Either<unknown, ParseResult.ParseError>
}

interface Client {
  readonly id: number
  readonly latches: Map<RequestId, Effect.Latch>
  readonly fibers: Map<RequestId, Fiber.RuntimeFiber<any, any>>
  /** The encoders of each request still to be answered. */
  readonly schemas: Map<RequestId, Schemas>
  /** The request fiber's base context per RPC handler, for the connection context it was merged with. */
  contexts:
    | {
      readonly base: Context.Context<never>
      readonly byHandler: Map<unknown, Context.Context<never>>
      /** ConnectionContext's services for this client. */
      readonly extra: Context.Context<never> | undefined
    }
    | undefined
  /** What the request spans take from the connection's runtime, for the origin it was read from. */
  spans: SpanSetup | undefined
  ended: boolean
}

/**
 * What every request span of a connection takes from the runtime requests are forked from: read once per
 * connection (its FiberRefs and context do not change) rather than looked up six times per request.
 */
interface SpanSetup {
  readonly origin: Origin
  /** False: tracing is off for the connection (Effect.withTracerEnabled(false)): no span. */
  readonly enabled: boolean
  readonly tracer: Tracer.Tracer
  readonly timing: boolean
  readonly annotations: HashMap.HashMap<string, unknown>
  /** The span links of the connection's fiber, then one to the connection's span. */
  readonly links: ReadonlyArray<Tracer.SpanLink>
}

interface RequestMessage {
  readonly _tag: "Request"
  readonly id: RequestId
  readonly tag: string
  readonly payload: unknown
  readonly headers: Headers.Headers
  readonly traceId?: string | undefined
  readonly spanId?: string | undefined
  readonly sampled?: boolean | undefined
}

type FromClient =
  | RequestMessage
  | { readonly _tag: "Ack"; readonly requestId: RequestId }
  | { readonly _tag: "Interrupt"; readonly requestId: RequestId }
  | { readonly _tag: "Eof" }

/** Where a request's fiber gets its context and FiberRefs: the fiber that received it, or its connection's runtime. */
interface Origin {
  readonly context: Context.Context<never>
  readonly fiberRefs: FiberRefs.FiberRefs
}

/** Payloads taken as they came: decoding with `Schema.Unknown` or `Schema.Void` answers the input itself. */
const isTakenAsIs = (schema: Schema.Schema.All) =>
  schema.ast._tag === "UnknownKeyword" || schema.ast._tag === "VoidKeyword"

const formatDefect = (cause: Cause.Cause<unknown>) =>
  Cause.squash(
    Cause.map(cause, (error) =>
      ParseResult.isParseError(error) ? ParseResult.TreeFormatter.formatErrorSync(error) : error)
  )

/**
 * `Context.add(context, Tracer.ParentSpan, span)`, copying the context's map entry by entry: Context.add
 * copies it from its iterator, which allocates an entry and an iterator result per service (~30 here, for
 * every request): 2.6 times the bytes of this copy, measured.
 */
const withParentSpan = (context: Context.Context<never>, span: Tracer.Span): Context.Context<never> => {
  const map = new Map<string, unknown>()
  context.unsafeMap.forEach((service, key) => map.set(key, service))
  map.set(Tracer.ParentSpan.key, span)
  return Context.unsafeMake(map)
}

/**
 * Encodes an RPC's Exit as `Schema.encodeUnknownEither(Rpc.exitSchema(rpc))`
 * does. A success, nearly every answer, skips the Exit schema's union and
 * transformation (about a third of the Schema work of a Health answer) and
 * is encoded with the success schema alone into the same
 * `{ _tag: "Success", value }`; a failure goes through the whole schema.
 */
export const makeExitEncoder = (rpc: Rpc.AnyWithProps) => {
  const encodeExit = Schema.encodeUnknownEither(Rpc.exitSchema(rpc as any) as Schema.Schema<unknown, unknown>)
  const streaming = RpcSchema.isStreamSchema(rpc.successSchema)
  const encodeValue = Schema.encodeUnknownEither(
    (streaming ? Schema.Void : rpc.successSchema) as Schema.Schema<unknown, unknown>
  )
  return (exit: unknown): Either.Either<unknown, ParseResult.ParseError> => {
    if (!Exit.isExit(exit) || !Exit.isSuccess(exit)) return encodeExit(exit)
    return Either.map(encodeValue(exit.value), (value) => ({ _tag: "Success", value }))
  }
}

/**
 * Serves `group` on the `Protocol` in context, with the group's handlers
 * and middleware from context, until interrupted.
 */
export const make = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: { readonly spanPrefix?: string | undefined; readonly disableTracing?: boolean | undefined } = {}
): Effect.Effect<never, never, Protocol | Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs> | Scope.Scope> =>
  Effect.gen(function*() {
    const protocol = yield* Protocol
    const dispatch = yield* Effect.serviceOption(RequestDispatch)
    const connectionContext = Option.getOrUndefined(yield* Effect.serviceOption(ConnectionContext))
    const enableTracing = options.disableTracing !== true
    const enableSpanPropagation = protocol.supportsSpanPropagation
    const supportsAck = protocol.supportsAck
    const spanPrefix = options.spanPrefix ?? "RpcServer"
    const context = (yield* Effect.context<never>()) as Context.Context<any>
    const clock = yield* Effect.clock
    const fiberSet = yield* FiberSet.make()
    const scope = yield* Scope.make()
    const runFork = yield* FiberSet.runtime(fiberSet)<never>().pipe(Effect.interruptible)
    const clients = new Map<number, Client>()
    let isShutdown = false
    const shutdownLatch = Effect.unsafeMakeLatch(false)
    const requestFlags = RuntimeFlags.disable(Runtime.defaultRuntime.runtimeFlags, RuntimeFlags.Interruption)

    const schemasCache = new WeakMap<object, Schemas>()
    const getSchemas = (rpc: Rpc.AnyWithProps): Schemas => {
      let schemas = schemasCache.get(rpc)
      if (schemas === undefined) {
        const streamSchemas = RpcSchema.getStreamSchemas(rpc.successSchema.ast)
        schemas = {
          decode: isTakenAsIs(rpc.payloadSchema)
            ? undefined
            : Schema.decodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown>),
          encodeChunk: Schema.encodeUnknownEither(
            Schema.Array(
              Option.isSome(streamSchemas) ? streamSchemas.value.success : Schema.Any
            ) as unknown as Schema.Schema<unknown, unknown>
          ),
          encodeExit: makeExitEncoder(rpc),
          encodeDefect: Schema.encodeUnknownEither(rpc.defectSchema as Schema.Schema<unknown, unknown>)
        }
        schemasCache.set(rpc, schemas)
      }
      return schemas
    }

    const encodeDefectSync = Schema.encodeSync(Schema.Defect)

    const sendDefect = (client: Client, defect: unknown): Effect.Effect<void> =>
      Effect.catchAllCause(
        Effect.suspend(() => protocol.send(client.id, { _tag: "Defect", defect: encodeDefectSync(defect) })),
        (cause) => Effect.annotateLogs(Effect.logDebug(cause), { module: "RpcServer", method: "sendDefect" })
      )

    const sendRequestDefect = (client: Client, requestId: RequestId, schemas: Schemas, defect: unknown) =>
      Effect.suspend(() => {
        const encoded = schemas.encodeDefect(defect)
        if (Either.isLeft(encoded)) return sendDefect(client, formatDefect(Cause.fail(encoded.left)))
        return Effect.catchAllCause(
          protocol.send(client.id, {
            _tag: "Exit",
            requestId: String(requestId),
            exit: { _tag: "Failure", cause: { _tag: "Die", defect: encoded.right } }
          } as any),
          (cause) => sendDefect(client, Cause.squash(cause))
        )
      })

    /** An answer, encoded with its request's schemas; one that cannot be encoded becomes that request's defect. */
    const sendEncoded = (
      client: Client,
      requestId: RequestId,
      schemas: Schemas,
      encoded: Either.Either<unknown, ParseResult.ParseError>,
      message: (value: unknown) => any
    ): Effect.Effect<void> => {
      const onFailure = (cause: Cause.Cause<unknown>) => {
        client.schemas.delete(requestId)
        return Effect.zipRight(
          sendRequestDefect(client, requestId, schemas, formatDefect(cause)),
          write(client.id, { _tag: "Interrupt", requestId })
        )
      }
      if (Either.isLeft(encoded)) return onFailure(Cause.fail(encoded.left))
      return Effect.catchAllCause(protocol.send(client.id, message(encoded.right)), onFailure)
    }

    const sendChunk = (client: Client, requestId: RequestId, values: ReadonlyArray<unknown>) => {
      const schemas = client.schemas.get(requestId)
      if (schemas === undefined) return Effect.void
      return sendEncoded(client, requestId, schemas, schemas.encodeChunk(values), (encoded) => ({
        _tag: "Chunk",
        requestId: String(requestId),
        values: encoded
      }))
    }

    const sendExit = (client: Client, requestId: RequestId, exit: Exit.Exit<unknown, unknown>) => {
      const schemas = client.schemas.get(requestId)
      if (schemas === undefined) return Effect.void
      client.schemas.delete(requestId)
      return sendEncoded(client, requestId, schemas, schemas.encodeExit(exit), (encoded) => ({
        _tag: "Exit",
        requestId: String(requestId),
        exit: encoded
      }))
    }

    const endClient = (client: Client): Effect.Effect<void> => {
      clients.delete(client.id)
      const end = protocol.end(client.id)
      if (isShutdown && clients.size === 0) return Effect.zipRight(end, shutdownLatch.open)
      return end
    }

    /** A fatal defect: the connection is told, and ends if it was ending. */
    const connectionDefect = (client: Client, defect: unknown) =>
      Effect.suspend(() => {
        const shouldEnd = client.ended && client.fibers.size === 0
        const send = sendDefect(client, defect)
        return shouldEnd ? Effect.zipRight(send, endClient(client)) : send
      })

    yield* Scope.addFinalizer(
      scope,
      Effect.suspend(() => {
        isShutdown = true
        for (const client of clients.values()) {
          client.ended = true
          if (client.fibers.size === 0) {
            runFork(endClient(client))
            continue
          }
          for (const fiber of client.fibers.values()) fiber.unsafeInterruptAsFork(fiberIdTransientInterrupt)
        }
        return clients.size === 0 ? Effect.void : shutdownLatch.await
      })
    )

    const applyMiddleware = (
      rpc: Rpc.AnyWithProps,
      clientId: number,
      payload: unknown,
      headers: Headers.Headers,
      handler: Effect.Effect<any, any>
    ): Effect.Effect<any, any> => {
      if (rpc.middlewares.size === 0) return handler
      const middlewareOptions = { rpc, payload, headers, clientId }
      for (const tag of rpc.middlewares as ReadonlySet<any>) {
        const middleware = Context.unsafeGet(context, tag) as (options: any) => Effect.Effect<any, any>
        if (tag.wrap) {
          handler = middleware({ ...middlewareOptions, next: handler })
        } else if (tag.optional) {
          const previous = handler
          handler = Effect.matchEffect(middleware(middlewareOptions), {
            onFailure: () => previous,
            onSuccess: tag.provides !== undefined
              ? (value) => Effect.provideService(previous, tag.provides, value)
              : () => previous
          })
        } else {
          handler = tag.provides !== undefined
            ? Effect.provideServiceEffect(handler, tag.provides, middleware(middlewareOptions))
            : Effect.zipRight(middleware(middlewareOptions), handler)
        }
      }
      return handler
    }

    const streamEffect = (client: Client, request: RequestMessage, stream: any): Effect.Effect<void, any> => {
      let latch = client.latches.get(request.id)
      if (supportsAck && latch === undefined) {
        latch = Effect.unsafeMakeLatch(false)
        client.latches.set(request.id, latch)
      }
      const writeChunk = (chunk: Chunk.Chunk<unknown>) => {
        if (!Chunk.isNonEmpty(chunk)) return Effect.void
        const send = sendChunk(client, request.id, Chunk.toReadonlyArray(chunk))
        if (latch === undefined) return send
        latch.unsafeClose()
        return Effect.zipRight(send, latch.await)
      }
      if (Effect.isEffect(stream)) {
        let done = false
        return (stream as Effect.Effect<any, any, Scope.Scope>).pipe(
          Effect.flatMap((mailbox) =>
            Effect.whileLoop({
              while: () => !done,
              body: () =>
                Effect.flatMap(
                  mailbox.takeAll as Effect.Effect<readonly [Chunk.Chunk<unknown>, boolean]>,
                  ([chunk, done_]) => {
                    done = done_
                    return writeChunk(chunk)
                  }
                ),
              step: constVoid
            })
          ),
          Effect.scoped
        )
      }
      return Stream.runForEachChunk(stream as Stream.Stream<unknown, any>, writeChunk)
    }

    /**
     * The request fiber's context before its span: the handler's merged with the connection's (and what
     * ConnectionContext adds for this client), once per pair.
     */
    const baseContext = (client: Client, entry: Rpc.Handler<string>, connection: Context.Context<never>) => {
      if (client.contexts === undefined || client.contexts.base !== connection) {
        client.contexts = {
          base: connection,
          byHandler: new Map(),
          extra: connectionContext === undefined ? undefined : connectionContext.forClient(client.id)
        }
      }
      let merged = client.contexts.byHandler.get(entry)
      if (merged === undefined) {
        merged = Context.merge(entry.context, connection)
        if (client.contexts.extra !== undefined) merged = Context.merge(merged, client.contexts.extra)
        client.contexts.byHandler.set(entry, merged)
      }
      return merged
    }

    /** Serves a request in a fiber of its own; answers what is left to run, if anything. */
    const handleRequest = (
      origin: Origin,
      client: Client,
      request: RequestMessage
    ): Effect.Effect<void> | undefined => {
      const running = client.fibers.get(request.id)
      if (running !== undefined) {
        return Effect.flatMap(Fiber.await(running), () => handleRequest(origin, client, request) ?? Effect.void)
      }
      const rpc = group.requests.get(request.tag) as Rpc.AnyWithProps | undefined
      const entry = rpc === undefined ? undefined : context.unsafeMap.get(rpc.key) as Rpc.Handler<string> | undefined
      if (rpc === undefined || entry === undefined) {
        const send = Effect.catchAllDefect(
          sendExit(client, request.id, Exit.die(`Unknown request tag: ${request.tag}`)),
          (defect) => connectionDefect(client, defect)
        )
        if (!client.ended || client.fibers.size > 0) return send
        return Effect.zipRight(send, endClient(client))
      }
      const isStream = RpcSchema.isStreamSchema(rpc.successSchema)
      const result = entry.handler(request.payload, { clientId: client.id, headers: request.headers })
      const isWrapper = Rpc.isWrapper(result)
      const isUninterruptible = isWrapper && result.uninterruptible
      const streamOrEffect = isWrapper ? result.value : result
      const handler = applyMiddleware(
        rpc,
        client.id,
        request.payload,
        request.headers,
        isStream ? streamEffect(client, request, streamOrEffect) : streamOrEffect as Effect.Effect<any, any>
      )
      let responded = false
      const effect = Effect.matchCauseEffect(isUninterruptible ? handler : Effect.interruptible(handler), {
        onSuccess: (value) => {
          responded = true
          return sendExit(client, request.id, Exit.succeed(value))
        },
        onFailure: (cause) => {
          responded = true
          if (Cause.isDie(cause) && !Cause.isInterrupted(cause)) return connectionDefect(client, Cause.squash(cause))
          return sendExit(client, request.id, Exit.failCause(cause))
        }
      })
      const base = baseContext(client, entry, origin.context)
      let span: Tracer.Span | undefined
      if (enableTracing) {
        span = makeSpan(client, origin, base, request)
      }
      const runtime = Runtime.make({
        context: span === undefined ? base : withParentSpan(base, span),
        fiberRefs: origin.fiberRefs,
        runtimeFlags: requestFlags
      })
      const fiber = Runtime.runFork(runtime, effect)
      client.fibers.set(request.id, fiber)
      fiber.addObserver((exit) => {
        if (span !== undefined && span.status._tag !== "Ended") span.end(clock.unsafeCurrentTimeNanos(), exit)
        if (!responded && exit._tag === "Failure") {
          FiberSet.unsafeAdd(
            fiberSet,
            Runtime.runFork(runtime, sendExit(client, request.id, Exit.interrupt(FiberId.none)))
          )
        }
        client.fibers.delete(request.id)
        client.latches.delete(request.id)
        if (client.ended && client.fibers.size === 0) {
          FiberSet.unsafeAdd(fiberSet, Runtime.runFork(runtime, endClient(client)))
        }
      })
      return undefined
    }

    /**
     * What `Effect.withSpan(name, { parent, links, attributes })` made in
     * @effect/rpc's server: the request's span, a child of the span the
     * client propagated (else of the context's), linked to the
     * connection's span.
     */
    const makeSpan = (
      client: Client,
      origin: Origin,
      base: Context.Context<never>,
      request: RequestMessage
    ): Tracer.Span | undefined => {
      const setup = spanSetup(client, origin)
      // Tracing turned off for this fiber (Effect.withTracerEnabled(false)): no span, as no child span either.
      if (!setup.enabled) return undefined
      const propagated = enableSpanPropagation && request.spanId !== undefined && request.traceId !== undefined
        ? Tracer.externalSpan({
          traceId: request.traceId,
          spanId: request.spanId,
          sampled: request.sampled ?? true
        })
        : undefined
      const parent: Option.Option<Tracer.AnySpan> = propagated !== undefined
        ? Option.some(propagated)
        : Context.getOption(base, Tracer.ParentSpan)
      const span = setup.tracer.span(
        `${spanPrefix}.${request.tag}`,
        parent,
        Context.empty(),
        // A copy: a span may add links to its own.
        setup.links.slice(),
        setup.timing ? clock.unsafeCurrentTimeNanos() : BigInt(0),
        "internal"
      )
      if (HashMap.size(setup.annotations) > 0) {
        for (const [key, value] of HashMap.toEntries(setup.annotations)) span.attribute(key, value)
      }
      span.attribute("requestId", String(request.id))
      return span
    }

    const spanSetup = (client: Client, origin: Origin): SpanSetup => {
      const known = client.spans
      if (
        known !== undefined && known.origin.fiberRefs === origin.fiberRefs && known.origin.context === origin.context
      ) {
        return known
      }
      const ref = <A>(fiberRef: FiberRef.FiberRef<A>) => FiberRefs.getOrDefault(origin.fiberRefs, fiberRef)
      const connectionSpan = origin.context.unsafeMap.get(Tracer.ParentSpan.key) as Tracer.AnySpan | undefined
      const linksFromEnv = ref(FiberRef.currentTracerSpanLinks)
      const links: Array<Tracer.SpanLink> = Chunk.isEmpty(linksFromEnv) ? [] : [...linksFromEnv]
      if (enableSpanPropagation && connectionSpan !== undefined) {
        links.push({ _tag: "SpanLink", span: connectionSpan, attributes: {} })
      }
      const setup: SpanSetup = {
        origin,
        enabled: ref(FiberRef.currentTracerEnabled),
        tracer: Context.get(ref(DefaultServices.currentServices), Tracer.Tracer),
        timing: ref(FiberRef.currentTracerTimingEnabled),
        annotations: ref(FiberRef.currentTracerSpanAnnotations),
        links
      }
      client.spans = setup
      return setup
    }

    const write = (clientId: number, message: FromClient): Effect.Effect<void> =>
      Effect.catchAllDefect(
        Effect.withFiberRuntime<void>((requestFiber) => {
          if (isShutdown) return Effect.interrupt
          const client = clientOf(clientId)
          if (client.ended) return Effect.interrupt
          switch (message._tag) {
            case "Request":
              return handleRequest(
                { context: requestFiber.currentContext, fiberRefs: requestFiber.getFiberRefs() },
                client,
                message
              ) ?? Effect.void
            case "Ack": {
              const latch = client.latches.get(message.requestId)
              return latch ? latch.open : Effect.void
            }
            case "Interrupt": {
              const fiber = client.fibers.get(message.requestId)
              return fiber
                ? Fiber.interruptAsFork(fiber, fiberIdClientInterrupt)
                : sendExit(client, message.requestId, Exit.interrupt(FiberId.none))
            }
            case "Eof": {
              client.ended = true
              if (client.fibers.size > 0) return Effect.void
              return endClient(client)
            }
          }
        }),
        (defect) => {
          const client = clients.get(clientId)
          return client === undefined ? Effect.void : connectionDefect(client, defect)
        }
      )

    // Disconnects: the client's fibers are interrupted.
    yield* Effect.forkIn(
      Effect.interruptible(Effect.whileLoop({
        while: constTrue,
        body: () =>
          Effect.flatMap(protocol.disconnects.take, (clientId) =>
            Effect.sync(() => {
              const client = clients.get(clientId)
              if (client === undefined) return
              for (const fiber of client.fibers.values()) fiber.unsafeInterruptAsFork(fiberIdTransientInterrupt)
              clients.delete(clientId)
            })),
        step: constVoid
      })),
      scope
    )

    const clientOf = (clientId: number) => {
      let client = clients.get(clientId)
      if (client === undefined) {
        client = {
          id: clientId,
          latches: new Map(),
          fibers: new Map(),
          schemas: new Map(),
          contexts: undefined,
          spans: undefined,
          ended: false
        }
        clients.set(clientId, client)
      }
      return client
    }

    /**
     * A request as it came: checked, its payload decoded, then served;
     * `serve` is `write` for the fiber path and the synchronous entry for
     * RequestDispatch.
     */
    const receiveRequest = (
      client: Client,
      encoded: Extract<FromClientEncoded, { _tag: "Request" }>,
      serve: (request: RequestMessage) => Effect.Effect<void> | undefined
    ): Effect.Effect<void> | undefined => {
      const tag = Object.hasOwn(encoded, "tag") ? encoded.tag : ""
      const rpc = group.requests.get(tag) as Rpc.AnyWithProps | undefined
      if (rpc === undefined) return sendDefect(client, `Unknown request tag: ${tag}`)
      if (typeof encoded.id !== "bigint" && typeof encoded.id !== "string") {
        return sendDefect(client, `Invalid request id: ${encoded.id}`)
      }
      const requestId = RequestId(encoded.id)
      const schemas = getSchemas(rpc)
      let payload: unknown = encoded.payload
      if (schemas.decode !== undefined) {
        const decoded = schemas.decode(encoded.payload)
        if (Either.isLeft(decoded)) {
          return sendRequestDefect(client, requestId, schemas, ParseResult.TreeFormatter.formatErrorSync(decoded.left))
        }
        payload = decoded.right
      }
      client.schemas.set(requestId, schemas)
      return serve(
        { ...encoded, id: requestId, payload, headers: Headers.fromInput(encoded.headers) } as RequestMessage
      )
    }

    // The synchronous entry: what `write` does for a request, with the connection's runtime for the fiber's.
    if (Option.isSome(dispatch)) {
      dispatch.value.request = (clientId, encoded, connection) => {
        const client = clientOf(clientId)
        try {
          return receiveRequest(client, encoded, (request) => {
            if (isShutdown || client.ended) return Effect.interrupt
            return handleRequest({ context: connection.context, fiberRefs: connection.fiberRefs }, client, request)
          })
        } catch (defect) {
          return connectionDefect(client, defect)
        }
      }
    }

    return yield* protocol.run((clientId, encoded: FromClientEncoded) => {
      const client = clientOf(clientId)
      switch (encoded._tag) {
        case "Request":
          return receiveRequest(client, encoded, (request) => write(clientId, request)) ?? Effect.void
        case "Ping":
          return Effect.catchAllCause(
            protocol.send(client.id, constPong),
            (cause) => sendDefect(client, Cause.squash(cause))
          )
        case "Eof":
          return write(clientId, encoded)
        case "Ack":
          return write(clientId, { _tag: "Ack", requestId: RequestId(encoded.requestId) })
        case "Interrupt":
          return write(clientId, { _tag: "Interrupt", requestId: RequestId(encoded.requestId) })
        default:
          return sendDefect(client, `Unknown request tag: ${(encoded as { _tag: string })._tag}`)
      }
    }).pipe(
      Effect.interruptible,
      Effect.tapErrorCause((cause) => Effect.logFatal("BUG: RpcServer protocol crashed", cause)),
      Effect.onExit((exit) => Scope.close(scope, exit)),
      Effect.withUnhandledErrorLogLevel(Option.none())
    )
  }) as any

/** The server as a layer: runs until the layer's scope closes. */
export const layer = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options?: { readonly spanPrefix?: string | undefined; readonly disableTracing?: boolean | undefined }
): Layer.Layer<never, never, Protocol | Rpc.ToHandler<Rpcs> | Rpc.Middleware<Rpcs>> =>
  Layer.scopedDiscard(Effect.forkScoped(Effect.interruptible(make(group, options))))
