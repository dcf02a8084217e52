import type { SuccessValue } from "@effect/rpc/RpcMiddleware"
import { Cause, Clock, Context, Effect, Exit, FiberRef, Layer, Option, Schema } from "effect"
import { constUndefined } from "effect/Function"
import { Unauthorized } from "../rpc/Errors.js"
import { CellId, JobId } from "../rpc/Ids.js"
import { Caller, CallerMiddleware, type CallerShape, type Role } from "../rpc/Middleware.js"
import { actionOf, atLeast, decide, describeUid, roleOf } from "../services/Authz.js"
import { DaemonConfig } from "../services/DaemonConfig.js"
import type { JournalEvent } from "../services/StateRepository.js"
import { StateRepository } from "../services/StateRepository.js"
import { ConnectionContext } from "./ConnectionContext.js"
import { FiberTree } from "./FiberTree.js"
import type { PeerCredentials } from "./PeerCredentials.js"
import { PeerRegistry } from "./PeerSocketProtocol.js"
import { userName } from "./UserDb.js"

/** What an audit row says about the request: its target and, for a run, the command (bounded). */
const requestFacts = (payload: unknown): Record<string, unknown> => {
  if (typeof payload !== "object" || payload === null) return {}
  const raw = payload as Record<string, unknown>
  const facts: Record<string, unknown> = {}
  for (const key of ["cell_id", "job_id", "name"] as const) {
    if (typeof raw[key] === "string") facts[key] = (raw[key] as string).slice(0, 200)
  }
  if (typeof raw.force === "boolean") facts.force = raw.force
  if (Array.isArray(raw.argv)) {
    facts.argv = raw.argv.slice(0, 32).map((arg) => (typeof arg === "string" ? arg.slice(0, 256) : "?"))
  }
  return facts
}

/** The ids an answer names (the cell or job created, killed or removed), for the audit row's columns. */
const resultIds = (value: unknown): { cell_id: CellId | null; job_id: JobId | null } => {
  const record = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>
  if (isJobId(record.id)) return { job_id: record.id, cell_id: isCellId(record.cell_id) ? record.cell_id : null }
  if (isCellId(record.id)) return { cell_id: record.id, job_id: null }
  return { cell_id: null, job_id: null }
}

const isCellId = Schema.is(CellId)
const isJobId = Schema.is(JobId)

/**
 * The CallerMiddleware: every request's connection is mapped to the peer
 * credentials read when it was accepted; the policy decides before the
 * handler runs (a denial is `unauthorized`, audited, and nothing else
 * happens); the handler gets the Caller; every state-changing request is
 * audited with its outcome, and so is a denial the handler makes (another
 * user's cell or job).
 */
/**
 * What `planter debug fibers` says of the fiber serving a request: the RPC, the peer that sent it, the job or cell it is about, and
 * `follower` for one that streams until the client stops (logs -f, events -f).
 */
const requestLabels = (
  tag: string,
  peer: { readonly uid: number; readonly pid: number | null },
  facts: Record<string, unknown>,
  payload: unknown
) => {
  const follows = tag.endsWith("Follow") || (payload as { follow?: unknown } | null)?.follow === true
  const labels: Record<string, string | number> = {
    "planter.fiber": follows ? "follower" : "request",
    "planter.rpc": tag,
    "planter.peer.uid": peer.uid
  }
  if (peer.pid !== null) labels["planter.peer.pid"] = peer.pid
  if (typeof facts.job_id === "string") labels["planter.job.id"] = facts.job_id
  if (typeof facts.cell_id === "string") labels["planter.cell.id"] = facts.cell_id
  return labels
}

/** Marks the current (RPC) span as failed: OTLP backends show `error` and the exception event. */
const recordError = (
  error: { readonly _tag?: string; readonly code?: string; readonly message?: string } | undefined
) =>
  Effect.flatMap(
    Effect.option(Effect.currentSpan),
    (span) =>
      Effect.flatMap(Clock.currentTimeNanos, (now) =>
        Effect.sync(() => {
          if (span._tag === "None") return
          const code = error?.code ?? "internal"
          span.value.attribute("error", true)
          span.value.attribute("planter.error.code", code)
          span.value.event("exception", now, {
            "exception.type": error?._tag ?? "Defect",
            "exception.message": error?.message ?? "the request failed"
          })
        }))
  )

/**
 * The CallerMiddleware, and the Caller of each connection for the RPC server to put in its requests'
 * context once (ConnectionContext); the middleware still decides every request.
 */
export const layer = Layer.effectContext(
  Effect.gen(function*() {
    const config = yield* DaemonConfig
    const peers = yield* PeerRegistry
    const repo = yield* StateRepository
    const fiberTree = Option.getOrUndefined(yield* Effect.serviceOption(FiberTree))

    const audit = (event: JournalEvent) =>
      repo.appendEvent(event).pipe(
        Effect.catchAll((error) => Effect.logWarning(`cannot audit ${event.kind} by uid ${event.uid}`, error))
      )

    /** A refusal, journaled with who asked for what and why. */
    const auditDenied = (
      rpc: string,
      peer: PeerCredentials,
      role: Role | null,
      facts: Record<string, unknown>,
      ids: { readonly cell_id: CellId | null; readonly job_id: JobId | null },
      message: string | undefined
    ) =>
      audit({
        kind: "denied",
        ...ids,
        uid: peer.uid,
        pid: peer.pid,
        detail: { rpc, role, ...facts, message }
      })

    /** Ends a request: its error on the span, its audit row, then its answer. */
    const afterHandler = (
      rpc: string,
      peer: PeerCredentials,
      role: Role | null,
      changesState: boolean,
      facts: Record<string, unknown>,
      ids: { readonly cell_id: CellId | null; readonly job_id: JobId | null },
      exit: Exit.Exit<SuccessValue, Unauthorized>
    ): Effect.Effect<SuccessValue, Unauthorized> => {
      if (Exit.isSuccess(exit) && !changesState) return exit
      const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
      const error = failure?._tag === "Some"
        ? (failure.value as { _tag?: string; code?: string; message?: string })
        : undefined
      return Effect.gen(function*() {
        // RpcServer ends the RPC's span as a success whatever the answer: the error is written on it here.
        if (Exit.isFailure(exit)) yield* recordError(error)
        if (error?._tag === "Unauthorized") {
          yield* auditDenied(rpc, peer, role, facts, ids, error.message)
        } else if (changesState) {
          const outcome = Exit.isSuccess(exit) ? "ok" : error?.code ?? "internal"
          const answered = Exit.isSuccess(exit) ? resultIds(exit.value) : { cell_id: null, job_id: null }
          yield* audit({
            kind: "request",
            cell_id: answered.cell_id ?? ids.cell_id,
            job_id: answered.job_id ?? ids.job_id,
            uid: peer.uid,
            pid: peer.pid,
            detail: { rpc, role, ...facts, outcome }
          })
        }
        return yield* exit
      })
    }

    /**
     * What a connection's peer is to the policy, worked out at its first request: its name in messages,
     * its role and the Caller handlers get. The policy is fixed for the daemon's life and the credentials
     * for the connection's, so each request reuses them; held as long as the connection's credentials are.
     */
    const known = new WeakMap<PeerCredentials, { readonly who: string; readonly caller: CallerShape }>()
    const knownPeer = (peer: PeerCredentials) => {
      let entry = known.get(peer)
      if (entry === undefined) {
        const who = describeUid(peer.uid, userName(peer.uid))
        entry = { who, caller: { ...peer, role: roleOf(config.authz, peer), name: who } }
        known.set(peer, entry)
      }
      return entry
    }

    /** A connection's Caller, for the server to put in its requests' context (none while its peer is unknown). */
    const connectionContext = ConnectionContext.of({
      forClient: (clientId) => {
        const peer = peers.get(clientId)
        return peer === undefined ? Context.empty() : Context.make(Caller, knownPeer(peer).caller)
      }
    })

    // Every request goes through here: plain functions and one fiber-runtime step rather than a generator,
    // `provideService` and `locally` (each a context or FiberRef copy inside an acquire/use/release).
    const middleware = CallerMiddleware.of(({ clientId, next, payload, rpc }) => {
      const peer = peers.get(clientId)
      if (peer === undefined) {
        return Effect.fail(new Unauthorized({ message: "this connection's peer credentials are unknown: reconnect" }))
      }
      const action = actionOf(rpc._tag) ?? { role: "admin" as const, what: `call ${rpc._tag}`, changesState: true }
      const { caller, who } = knownPeer(peer)
      const role = caller.role
      const facts = requestFacts(payload)
      const ids = {
        // A cell may be named by its name; only a valid id goes into the indexed column.
        cell_id: facts.cell_id !== undefined && isCellId(facts.cell_id) ? facts.cell_id : null,
        job_id: facts.job_id !== undefined && isJobId(facts.job_id) ? facts.job_id : null
      }
      // The peer's role is known: only a refusal needs the policy's decision, for its words.
      if (action.role !== null && (role === null || !atLeast(role, action.role))) {
        const decision = decide(config.authz, peer, action, { who })
        if (!decision.allowed) {
          return Effect.zipRight(
            auditDenied(rpc._tag, peer, role, facts, ids, decision.message),
            Effect.fail(new Unauthorized({ message: decision.message }))
          )
        }
      }
      const labels = requestLabels(rpc._tag, peer, facts, payload)
      const handler = next as Effect.Effect<SuccessValue, Unauthorized>
      const served = Effect.withFiberRuntime<SuccessValue, Unauthorized>((fiber) => {
        const span = fiber.currentSpan
        if (span?._tag === "Span") {
          span.attribute("planter.caller.uid", peer.uid)
          span.attribute("planter.caller.role", role ?? "none")
        }
        fiberTree?.label(fiber, labels)
        // The server put this connection's Caller in the fiber's context (ConnectionContext): nothing to add.
        if (Context.getOrElse(fiber.currentContext, Caller, constUndefined) === caller) return handler
        // Else: this fiber serves this request only, so the Caller can stay in its context until it ends, set
        // once rather than provided (which restores the context afterwards), so `next` has it.
        return Effect.zipRight(
          FiberRef.update(FiberRef.currentContext, (context) => Context.add(context, Caller, caller)),
          handler
        )
      })
      const after = (exit: Exit.Exit<SuccessValue, Unauthorized>) =>
        afterHandler(rpc._tag, peer, role, action.changesState, facts, ids, exit)
      // A read's answer goes out as it is (no Exit made, no step after it); only its failure has more to do.
      if (!action.changesState) return Effect.catchAllCause(served, (cause) => after(Exit.failCause(cause)))
      return Effect.matchCauseEffect(served, {
        onFailure: (cause) => after(Exit.failCause(cause)),
        onSuccess: (value) => after(Exit.succeed(value))
      })
    })
    return Context.make(CallerMiddleware, middleware).pipe(Context.add(ConnectionContext, connectionContext))
  })
)
