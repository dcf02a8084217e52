import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option, Schema } from "effect"
import * as path from "node:path"
import type { PlanterClientShape } from "../rpc/client.js"
import { connect } from "../rpc/client.js"
import type { VersionInfo } from "../rpc/Models.js"
import { EnvName } from "../rpc/Models.js"
import { defaultSocketPath, defaultStateDir } from "../services/DaemonConfig.js"
import { parseDuration, parseSize } from "../services/Limits.js"
import { CliFailure, ExitCode, usageError } from "./Output.js"

/** The root command: its options are global, read by every subcommand. */
export const planter = Command.make("planter", {
  socket: Options.text("socket").pipe(
    Options.withDescription("planterd's socket (default: $PLANTER_SOCKET or <state dir>/planterd.sock)"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("print exactly one JSON document on stdout"))
})

/** What the CLI says when the daemon goes away in the middle of a command (exit code 4). */
export const lostMessage = (why: string) =>
  `lost the connection to planterd${
    why ? ` (${why})` : ""
  }: the daemon stopped or crashed; its jobs keep running unless it was stopped without --keep-jobs. Start it again and check with \`planter job ls\``

/**
 * Runs `f` with a connected client (and the version the daemon answered when it connected), turning every
 * failure into a CliFailure with the contract's exit code.
 */
export const withClient = <A, E>(
  f: (client: PlanterClientShape, json: boolean, daemon: VersionInfo) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const { json, socket } = yield* planter
    const socketPath = Option.match(socket, {
      onNone: () => defaultSocketPath(defaultStateDir()),
      onSome: (file) => path.resolve(file)
    })
    return yield* Effect.scoped(
      Effect.flatMap(connect({ socketPath }), (connected) => f(connected.client, json, connected.daemon))
    )
  }).pipe(
    Effect.catchAll((error: unknown): Effect.Effect<never, CliFailure> => {
      const tagged = error as { _tag?: string; code?: string; message?: string; detail?: string }
      switch (tagged._tag) {
        case "CliFailure":
          return Effect.fail(error as CliFailure)
        case "DaemonUnavailable":
          return Effect.fail(
            new CliFailure({ exitCode: ExitCode.noDaemon, code: "no_daemon", message: tagged.message ?? "" })
          )
        case "RpcClientError":
          return Effect.fail(
            new CliFailure({
              exitCode: ExitCode.connectionLost,
              code: "connection_lost",
              message: lostMessage(tagged.message ?? "")
            })
          )
        default:
          return Effect.fail(
            new CliFailure({
              // The daemon refused what was asked as malformed (a bad name, path, id): bad usage, as the CLI's own checks.
              exitCode: tagged.code === "invalid_request" || tagged.code === "limit_invalid"
                ? ExitCode.usage
                : ExitCode.daemonError,
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

/** `--label KEY=VALUE` pairs; the daemon checks keys and values again (JobLabels). */
export const parseLabels = (pairs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const labels: Record<string, string> = {}
    for (const pair of pairs) {
      const eq = pair.indexOf("=")
      if (eq <= 0) return yield* usageError(`--label ${pair}: expected KEY=VALUE, e.g. --label branch=main`)
      labels[pair.slice(0, eq)] = pair.slice(eq + 1)
    }
    return labels
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

export const timeoutOption = Options.text("timeout").pipe(
  Options.withDescription("end the job with reason timeout after this long, e.g. 30s, 5m, 500ms"),
  Options.optional
)
export const maxRssOption = Options.text("max-rss").pipe(
  Options.withDescription(
    "end the job with reason memory_limit when its tree's total RSS passes this, e.g. 512M, 2G (K = 1024)"
  ),
  Options.optional
)
export const maxLogOption = Options.text("max-log").pipe(
  Options.withDescription("end the job with reason log_quota when stdout + stderr pass this, e.g. 100M"),
  Options.optional
)

/** `--timeout`, `--max-rss`, `--max-log` in human units; nonsense is refused with `limit_invalid` before anything is sent. */
export const parseLimitFlags = (flags: {
  readonly timeout: Option.Option<string>
  readonly maxRss: Option.Option<string>
  readonly maxLog: Option.Option<string>
}) =>
  Effect.gen(function*() {
    const parsed: { timeout_ms?: number; max_rss_bytes?: number; max_log_bytes?: number } = {}
    const each = [
      ["timeout", flags.timeout, parseDuration, "timeout_ms"],
      ["max-rss", flags.maxRss, parseSize, "max_rss_bytes"],
      ["max-log", flags.maxLog, parseSize, "max_log_bytes"]
    ] as const
    for (const [flag, value, parse, field] of each) {
      if (Option.isNone(value)) continue
      const result = parse(value.value)
      if (typeof result === "string") {
        return yield* new CliFailure({
          exitCode: ExitCode.usage,
          code: "limit_invalid",
          message: `--${flag} ${result}`
        })
      }
      parsed[field] = result
    }
    return Object.keys(parsed).length === 0 ? null : parsed
  })
