import * as Rpc from "@effect/rpc/Rpc"
import { describe, expect, it } from "@effect/vitest"
import { Either, Exit, Schema } from "effect"
import { makeExitEncoder } from "../../src/layers/RpcServerLean.js"
import { Unauthorized } from "../../src/rpc/Errors.js"
import { HealthInfo } from "../../src/rpc/Models.js"
import { PlanterWireRpcs } from "../../src/rpc/Rpcs.js"

const health = PlanterWireRpcs.requests.get("Health")!
const eventsFollow = PlanterWireRpcs.requests.get("EventsFollow")!
const full = (rpc: Rpc.AnyWithProps) =>
  Schema.encodeUnknownEither(Rpc.exitSchema(rpc as never) as unknown as Schema.Schema<unknown, unknown>)

const answer = (pid: unknown) =>
  new HealthInfo({
    ok: true,
    degraded: null,
    version: "0.1.0",
    pid: pid as number,
    uptime_ms: 5,
    socket: "/tmp/s.sock",
    state_dir: "/tmp/state",
    sandbox: { mode: "disabled", backend: "none", available: false, unavailable_reason: "off" },
    running_jobs: 0,
    monitor: null
  }, { disableValidation: true })

describe("the RPC server's Exit encoder", () => {
  it("encodes a success, a failure and a stream's end exactly as the Exit schema does", () => {
    const encode = makeExitEncoder(health)
    const exits: Array<Exit.Exit<unknown, unknown>> = [
      Exit.succeed(answer(42)),
      Exit.fail(new Unauthorized({ message: "no" })),
      Exit.die("boom")
    ]
    for (const exit of exits) expect(encode(exit)).toStrictEqual(full(health)(exit))
    expect(Either.getOrThrow(encode(exits[0]!))).toMatchObject({ _tag: "Success", value: { pid: 42, ok: true } })
    const follow = makeExitEncoder(eventsFollow)
    expect(follow(Exit.void)).toStrictEqual(full(eventsFollow)(Exit.void))
  })

  it("refuses an answer that does not match its schema, as the Exit schema does", () => {
    const encode = makeExitEncoder(health)
    const bad = Exit.succeed(answer("not a number"))
    expect(Either.isLeft(encode(bad))).toBe(true)
    expect(Either.isLeft(full(health)(bad))).toBe(true)
  })
})
