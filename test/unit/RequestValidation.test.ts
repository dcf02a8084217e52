import * as RpcSchema from "@effect/rpc/RpcSchema"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Schema, SchemaAST } from "effect"
import { InvalidRequest } from "../../src/rpc/Errors.js"
import { decodeRequest, describeValue, formatPath, type PayloadSchema } from "../../src/rpc/RequestValidation.js"
import {
  CellCreatePayload,
  JobListPayload,
  JobRunPayload,
  LogsReadPayload,
  MAX_FOLLOW_WAIT_MS,
  MAX_LOG_CHUNK_BYTES,
  PlanterRpcs,
  PlanterWireRpcs
} from "../../src/rpc/Rpcs.js"

const cellCreate = { name: "demo", env: { A: "1" }, read_paths: ["/tmp"], network: "allow" }
const jobRun = { cell_id: "demo", argv: ["echo", "hi"], env: {}, cwd: null, network: null }
const logsRead = { job_id: "job-x", stream: "stdout", offset: 0, max_bytes: 1024, follow: false, wait_ms: 0 }

/** Decodes `raw` with `schema` and answers the InvalidRequest's message (failing the test if it decoded). */
const refusal = <A, I>(schema: PayloadSchema<A, I>, raw: unknown) =>
  decodeRequest(schema)(raw).pipe(
    Effect.flip,
    Effect.map((error) => {
      expect(error).toBeInstanceOf(InvalidRequest)
      expect(error.code).toBe("invalid_request")
      return error.message
    })
  )

const NAME_RULE = "an environment variable name is letters, digits and underscores, not starting with a digit"
const NUL_RULE = "must not contain null bytes (\\0): the OS cannot pass them"

describe("RequestValidation", () => {
  it.effect("passes valid payloads through unchanged", () =>
    Effect.gen(function*() {
      expect(yield* decodeRequest(CellCreatePayload)(cellCreate)).toEqual(cellCreate)
      expect(yield* decodeRequest(JobRunPayload)(jobRun)).toEqual(jobRun)
      expect(yield* decodeRequest(LogsReadPayload)(logsRead)).toEqual(logsRead)
      expect(
        yield* decodeRequest(LogsReadPayload)({
          ...logsRead,
          max_bytes: MAX_LOG_CHUNK_BYTES,
          wait_ms: MAX_FOLLOW_WAIT_MS
        })
      )
        .toMatchObject({ max_bytes: MAX_LOG_CHUNK_BYTES, wait_ms: MAX_FOLLOW_WAIT_MS })
    }))

  it.effect("refuses env names and values a process cannot take, naming the variable, where a Record would drop them", () =>
    Effect.gen(function*() {
      const withEnv = [
        (env: unknown) => refusal(CellCreatePayload, { ...cellCreate, env }),
        (env: unknown) => refusal(JobRunPayload, { ...jobRun, env })
      ]
      for (const refuseEnv of withEnv) {
        for (const name of ["BAD-NAME", "1X", "ÉTÉ", "A\u0000B", ""]) {
          expect(yield* refuseEnv({ OK: "1", [name]: "x" })).toBe(
            `invalid request: env[${JSON.stringify(name)}]: ${NAME_RULE}`
          )
        }
        expect(yield* refuseEnv({ OK: "a\u0000b" })).toBe(`invalid request: env["OK"]: ${NUL_RULE}`)
        expect(yield* refuseEnv({ OK: 5 })).toBe("invalid request: env[\"OK\"]: expected a string, got 5")
        // A msgpack map arrives as a Map, whose entries a Record would not see at all.
        expect(yield* refuseEnv(new Map([["A", "b"]]))).toMatch(
          /^invalid request: env: expected an object .*, got a Map$/
        )
      }
    }))

  it.effect("refuses bad LogsRead fields, saying what each one takes", () =>
    Effect.gen(function*() {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ stream: "bogus" }, "stream: expected \"stdout\" or \"stderr\", got \"bogus\""],
        [{ offset: -1 }, "offset: expected a whole number of bytes, 0 or more, got -1"],
        [{ offset: 1.5 }, "offset: expected a whole number of bytes, 0 or more, got 1.5"],
        [{ offset: Number.NaN }, "offset: expected a whole number of bytes, 0 or more, got NaN"],
        [{ offset: "0" }, "offset: expected a whole number of bytes, 0 or more, got \"0\""],
        [{ max_bytes: 0 }, `max_bytes: expected a whole number of bytes from 1 to ${MAX_LOG_CHUNK_BYTES}, got 0`],
        [
          { max_bytes: MAX_LOG_CHUNK_BYTES + 1 },
          `max_bytes: expected a whole number of bytes from 1 to ${MAX_LOG_CHUNK_BYTES}, got ${MAX_LOG_CHUNK_BYTES + 1}`
        ],
        [{ wait_ms: -1 }, `wait_ms: expected a whole number of milliseconds from 0 to ${MAX_FOLLOW_WAIT_MS}, got -1`],
        [
          { wait_ms: MAX_FOLLOW_WAIT_MS + 1 },
          `wait_ms: expected a whole number of milliseconds from 0 to ${MAX_FOLLOW_WAIT_MS}, got ${
            MAX_FOLLOW_WAIT_MS + 1
          }`
        ],
        [{ job_id: 5 }, "job_id: expected a job id (job-…) or name, got 5"],
        [{ follow: "yes" }, "follow: expected true or false, got \"yes\""]
      ]
      for (const [change, message] of cases) {
        expect(yield* refusal(LogsReadPayload, { ...logsRead, ...change })).toBe(`invalid request: ${message}`)
      }
    }))

  it.effect("refuses bad JobRun and CellCreate fields, unknown fields, missing ones and non-objects", () =>
    Effect.gen(function*() {
      expect(yield* refusal(JobRunPayload, { ...jobRun, argv: [] })).toMatch(/^invalid request: argv: nothing to run/)
      expect(yield* refusal(JobRunPayload, { ...jobRun, argv: ["echo", 5] })).toBe(
        "invalid request: argv[1]: expected a string, got 5"
      )
      expect(yield* refusal(JobRunPayload, { ...jobRun, argv: ["echo", "a\u0000b"] })).toBe(
        `invalid request: argv[1]: ${NUL_RULE}`
      )
      expect(yield* refusal(JobRunPayload, { ...jobRun, argv: [""] })).toMatch(
        /^invalid request: argv\[0\]: the program is empty/
      )
      expect(yield* refusal(JobRunPayload, { ...jobRun, cwd: "a\u0000" })).toBe(`invalid request: cwd: ${NUL_RULE}`)
      expect(yield* refusal(JobRunPayload, { ...jobRun, network: "maybe" })).toMatch(
        /^invalid request: network: expected "allow", "deny" or null.*, got "maybe"$/
      )
      expect(yield* refusal(CellCreatePayload, { ...cellCreate, network: "maybe" })).toBe(
        "invalid request: network: expected \"allow\" or \"deny\", got \"maybe\""
      )
      expect(yield* refusal(CellCreatePayload, { ...cellCreate, read_paths: ["/a", "/b\u0000"] })).toBe(
        `invalid request: read_paths[1]: ${NUL_RULE}`
      )
      expect(yield* refusal(JobListPayload, { cell_id: 5 })).toMatch(/^invalid request: cell_id: expected .*, got 5$/)
      expect(yield* refusal(CellCreatePayload, { ...cellCreate, nmae: "typo" }))
        .toBe("invalid request: nmae: unknown field (the fields are name, env, read_paths, network, limits)")
      expect(yield* refusal(JobRunPayload, { cell_id: "demo", argv: ["true"], env: {}, network: null }))
        .toBe("invalid request: cwd: missing: this field is required")
      expect(yield* refusal(JobRunPayload, 5)).toBe(
        "invalid request: expected an object with the fields cell_id, argv, env, cwd, network, limits, name, labels, stdin, got 5"
      )
    }))

  it("shows paths and values as a script author would write them, cutting long strings short", () => {
    expect(formatPath(["env", "BAD-NAME"])).toBe("env[\"BAD-NAME\"]")
    expect(formatPath(["argv", 1])).toBe("argv[1]")
    expect(formatPath(["a b"])).toBe("[\"a b\"]")
    expect(describeValue(Number.NaN)).toBe("NaN")
    expect(describeValue(null)).toBe("null")
    expect(describeValue([1, 2])).toBe("an array of 2")
    expect(describeValue("x".repeat(10_000))).toBe(`${JSON.stringify("x".repeat(80))}…`)
    expect(formatPath(["env", "y".repeat(10_000)]).length).toBeLessThan(100)
  })

  it("serves the same RPCs on the wire as the client's group, with InvalidRequest wherever a payload can be bad", () => {
    expect([...PlanterWireRpcs.requests.keys()]).toEqual([...PlanterRpcs.requests.keys()])
    for (const [tag, strict] of PlanterRpcs.requests) {
      const wire = PlanterWireRpcs.requests.get(tag)!
      expect(wire.successSchema, tag).toBe(strict.successSchema)
      expect(wire.errorSchema, tag).toBe(strict.errorSchema)
      if (strict.payloadSchema === Schema.Void) {
        expect(wire.payloadSchema, tag).toBe(Schema.Void)
        continue
      }
      expect(wire.payloadSchema, tag).toBe(Schema.Unknown)
      // A streaming RPC (EventsFollow) answers its errors down the stream: they are in its stream schema.
      const errorSchema = Option.match(RpcSchema.getStreamSchemas(strict.successSchema.ast), {
        onNone: () => strict.errorSchema,
        onSome: (stream) => stream.failure
      })
      const errors = SchemaAST.isUnion(errorSchema.ast) ? errorSchema.ast.types : [errorSchema.ast]
      expect(errors, `${tag} can answer invalid_request`).toContain(InvalidRequest.ast)
    }
  })
})
