import { Effect } from "effect"
import {
  Conflict,
  Internal,
  InvalidRequest,
  LimitInvalid,
  NotFound,
  SandboxUnavailable,
  type Unauthorized
} from "../rpc/Errors.js"
import type {
  DaemonFault,
  InvalidInput,
  LimitRejected,
  SandboxRefused,
  StateConflict,
  UnknownEntity
} from "../services/DomainErrors.js"
import type { StateError } from "../services/StateRepository.js"

export type DomainError =
  | InvalidInput
  | LimitRejected
  | UnknownEntity
  | StateConflict
  | SandboxRefused
  | DaemonFault
  | StateError

type WireError = InvalidRequest | LimitInvalid | NotFound | Conflict | SandboxUnavailable | Internal | Unauthorized

const isWire = (error: DomainError | WireError): error is WireError =>
  error._tag === "InvalidRequest" || error._tag === "LimitInvalid" || error._tag === "NotFound" ||
  error._tag === "Conflict" ||
  error._tag === "SandboxUnavailable" || error._tag === "Internal" || error._tag === "Unauthorized"

/**
 * The one place domain errors become wire errors, each with its stable
 * code. Failures of the daemon itself are logged with their cause on the
 * daemon's side; the client gets a message it can act on.
 */
export const toWireError = (error: DomainError | WireError): Effect.Effect<never, WireError> => {
  if (isWire(error)) return Effect.fail(error)
  switch (error._tag) {
    case "InvalidInput":
      return Effect.fail(new InvalidRequest({ message: error.message }))
    case "LimitRejected":
      return Effect.fail(new LimitInvalid({ message: error.message }))
    case "UnknownEntity":
      return Effect.fail(new NotFound({ message: error.message }))
    case "StateConflict":
      return Effect.fail(new Conflict({ message: error.message }))
    case "SandboxRefused":
      return Effect.fail(new SandboxUnavailable({ message: error.message }))
    case "DaemonFault":
      return Effect.zipRight(Effect.logError(error.message), Effect.fail(new Internal({ message: error.message })))
    case "StateError":
      return Effect.zipRight(
        Effect.logError("state error", error),
        Effect.fail(new Internal({ message: `the daemon could not access its database: ${error.message}` }))
      )
  }
}

/** The wire error each domain error becomes (wire errors stay as they are). */
export type WireOf<E> = E extends { readonly _tag: "InvalidInput" } ? InvalidRequest
  : E extends { readonly _tag: "LimitRejected" } ? LimitInvalid
  : E extends { readonly _tag: "UnknownEntity" } ? NotFound
  : E extends { readonly _tag: "StateConflict" } ? Conflict
  : E extends { readonly _tag: "SandboxRefused" } ? SandboxUnavailable
  : E extends { readonly _tag: "DaemonFault" | "StateError" } ? Internal
  : E

/** A handler's effect with its domain errors mapped to wire errors. */
export const onWire = <A, E extends DomainError | WireError, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, WireOf<E>, R> =>
  Effect.catchAll(effect, (error) => toWireError(error) as Effect.Effect<never, WireOf<E>>)
