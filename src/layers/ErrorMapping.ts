import { Effect } from "effect"
import { Internal } from "../rpc/Errors.js"
import type { StateError } from "../services/StateRepository.js"

/** A storage failure reaches clients as `internal`, with the cause logged on the daemon's side. */
export const stateToInternal = <A, E, R>(effect: Effect.Effect<A, E | StateError, R>) =>
  Effect.catchIf(
    effect,
    (error): error is StateError => (error as { _tag?: string })._tag === "StateError",
    (error) =>
      Effect.zipRight(
        Effect.logError("state error", error),
        Effect.fail(new Internal({ message: `the daemon could not access its database: ${error.message}` }))
      )
  )
