import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option, Schema } from "effect"
import * as path from "node:path"
import type { PlanterClientShape } from "../rpc/client.js"
import { make as makeClient } from "../rpc/client.js"
import { EnvName } from "../rpc/Models.js"
import { defaultSocketPath, defaultStateDir } from "../services/DaemonConfig.js"
import { CliFailure, ExitCode, usageError } from "./Output.js"

/** The root command: its options are global, read by every subcommand. */
export const planter = Command.make("planter", {
  socket: Options.text("socket").pipe(
    Options.withDescription("planterd's socket (default: $PLANTER_SOCKET or <state dir>/planterd.sock)"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("print exactly one JSON document on stdout"))
})

/** Runs `f` with a connected client, turning every failure into a CliFailure with the contract's exit code. */
export const withClient = <A, E>(f: (client: PlanterClientShape, json: boolean) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const { json, socket } = yield* planter
    const socketPath = Option.match(socket, {
      onNone: () => defaultSocketPath(defaultStateDir()),
      onSome: (file) => path.resolve(file)
    })
    return yield* Effect.scoped(Effect.flatMap(makeClient({ socketPath }), (client) => f(client, json)))
  }).pipe(
    Effect.catchAll((error: unknown): Effect.Effect<never, CliFailure> => {
      const tagged = error as { _tag?: string; code?: string; message?: string; detail?: string }
      switch (tagged._tag) {
        case "CliFailure":
          return Effect.fail(error as CliFailure)
        case "DaemonUnavailable":
          return Effect.fail(new CliFailure({ exitCode: ExitCode.noDaemon, code: "no_daemon", message: tagged.message ?? "" }))
        case "RpcClientError":
          return Effect.fail(
            new CliFailure({ exitCode: ExitCode.daemonError, code: "connection_lost", message: `lost the connection to planterd: ${tagged.message}` })
          )
        default:
          return Effect.fail(
            new CliFailure({
              exitCode: ExitCode.daemonError,
              code: tagged.code ?? "internal",
              message: tagged.message ?? String(error),
              ...(tagged.detail !== undefined ? { detail: tagged.detail } : {})
            })
          )
      }
    })
  )

const isEnvName = Schema.is(EnvName)

/** `--env NAME=VALUE` pairs; a bad name is a usage error here, and the daemon refuses one from any client. */
export const parseEnv = (pairs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const env: Record<string, string> = {}
    for (const pair of pairs) {
      const eq = pair.indexOf("=")
      const name = eq < 0 ? "" : pair.slice(0, eq)
      if (!isEnvName(name)) {
        return yield* usageError(`--env ${pair}: expected NAME=VALUE with NAME made of letters, digits and underscores`)
      }
      env[name] = pair.slice(eq + 1)
    }
    return env
  })

export const envOption = Options.text("env").pipe(
  Options.withDescription("environment variable NAME=VALUE (repeatable)"),
  Options.repeated
)
export const networkOption = Options.choice("network", ["allow", "deny"]).pipe(
  Options.withDescription("network access for the jobs"),
  Options.optional
)
export const forceOption = Options.boolean("force")

