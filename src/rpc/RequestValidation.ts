/**
 * Turns a request payload that fails its schema into an `InvalidRequest`
 * naming the field and saying what was expected, instead of the protocol
 * defect @effect/rpc answers when a payload does not decode.
 *
 * The daemon serves its RPCs with unchecked payloads (see `PlanterWireRpcs`)
 * and every handler decodes its payload here, with the strict schema that
 * `PlanterRpcs` gives the typed client.
 */
import { Effect, Either, ParseResult, Schema } from "effect"
import { InvalidRequest } from "./Errors.js"

/** Long strings a client sent are cut here in messages: enough to recognise, never megabytes. */
const MAX_SHOWN_CHARS = 80

const quote = (text: string) =>
  text.length > MAX_SHOWN_CHARS ? `${JSON.stringify(text.slice(0, MAX_SHOWN_CHARS))}…` : JSON.stringify(text)

/** A value a client sent, as a message shows it: short, and typed enough to see what went wrong. */
export const describeValue = (value: unknown): string => {
  if (typeof value === "string") return quote(value)
  if (value === null || typeof value !== "object") return typeof value === "bigint" ? `${value}n` : String(value)
  if (Array.isArray(value)) return value.length === 0 ? "an empty array" : `an array of ${value.length}`
  if (value instanceof Uint8Array) return `${value.length} bytes of binary data`
  const proto = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) return "an object"
  const name = (proto as { constructor?: { name?: string } }).constructor?.name
  return name ? `a ${name}` : "an object"
}

const got = (issue: ParseResult.ParseIssue) => `got ${describeValue(issue.actual)}`

/**
 * A message annotation for a field's schema: "expected WHAT, got VALUE".
 * It overrides the messages of the schema's parts, so a union of literals
 * says `expected "stdout" or "stderr"` once rather than once per member.
 * Put it on leaves and unions; containers take `expectedShape`.
 */
export const expected = (what: string) => ({
  message: (issue: ParseResult.ParseIssue) => ({ message: `expected ${what}, ${got(issue)}`, override: true })
})

/**
 * Like `expected`, for structs, records and arrays: used only when the value
 * is not that kind of container at all, so a bad element or entry still
 * reports its own path and message.
 */
export const expectedShape = (what: string) => ({
  message: (issue: ParseResult.ParseIssue) => ({ message: `expected ${what}, ${got(issue)}`, override: false })
})

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

/** `env["BAD-NAME"]`, `argv[1]`, `stream`: a path as a script author would write it. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((key, index) =>
    typeof key === "number"
      ? `[${key}]`
      : index === 0 && typeof key === "string" && IDENTIFIER.test(key)
      ? key
      : `[${typeof key === "string" ? quote(key) : String(key)}]`
  ).join("")

/** The schema of a payload: a struct, so an unknown field can be told from a known one. */
export type PayloadSchema<A, I> = Schema.Schema<A, I> & { readonly fields: Schema.Struct.Fields }

/** The first problem with a payload, as one line naming the field. */
export const describeParseError = (error: ParseResult.ParseError, fields: ReadonlyArray<string>): string => {
  const [first] = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (first === undefined) return "invalid request"
  const where = formatPath(first.path)
  const what = first._tag === "Unexpected"
    ? `unknown field (the fields are ${fields.join(", ")})`
    : first._tag === "Missing"
    ? "missing: this field is required"
    : first.message
  return where === "" ? `invalid request: ${what}` : `invalid request: ${where}: ${what}`
}

/**
 * Decodes a raw payload with its strict schema. Excess fields are refused
 * too: a field the daemon does not know would otherwise be ignored without
 * a word, like a misspelt option.
 */
export const decodeRequest = <A, I>(schema: PayloadSchema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })
  const fields = Object.keys(schema.fields)
  return (raw: unknown): Effect.Effect<A, InvalidRequest> =>
    Either.match(decode(raw), {
      onRight: Effect.succeed,
      onLeft: (error) => {
        const message = describeParseError(error, fields)
        return Effect.zipRight(
          Effect.annotateCurrentSpan("planter.invalid_request", message),
          Effect.fail(new InvalidRequest({ message }))
        )
      }
    })
}

/** A handler that runs only on a payload that decoded: the one place requests are checked for shape. */
export const validated = <A, I, B, E, R>(
  schema: PayloadSchema<A, I>,
  handler: (request: A) => Effect.Effect<B, E, R>
) => {
  const decode = decodeRequest(schema)
  return (raw: unknown): Effect.Effect<B, E | InvalidRequest, R> => Effect.flatMap(decode(raw), handler)
}
