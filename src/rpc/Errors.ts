import { Schema } from "effect"

/**
 * Every error the daemon answers with carries a stable `code` that scripts
 * can match on, a message a person can act on, and optional detail.
 */
const fields = <Code extends string>(code: Code) => ({
  code: Schema.optionalWith(Schema.Literal(code), { default: () => code }),
  message: Schema.String,
  detail: Schema.optional(Schema.String)
})

export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", fields("invalid_request")) {}
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", fields("not_found")) {}
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", fields("conflict")) {}
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", fields("unauthorized")) {}
export class SandboxUnavailable
  extends Schema.TaggedError<SandboxUnavailable>()("SandboxUnavailable", fields("sandbox_unavailable"))
{}
export class LimitInvalid extends Schema.TaggedError<LimitInvalid>()("LimitInvalid", fields("limit_invalid")) {}
export class Internal extends Schema.TaggedError<Internal>()("Internal", fields("internal")) {}

export const PlanterError = Schema.Union(
  InvalidRequest,
  NotFound,
  Conflict,
  Unauthorized,
  SandboxUnavailable,
  LimitInvalid,
  Internal
)
export type PlanterError = typeof PlanterError.Type
