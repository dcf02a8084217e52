#!/usr/bin/env node
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Duration, Effect, Exit, Layer, Option } from "effect"
import * as path from "node:path"
import * as Daemon from "../layers/Daemon.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import { defaultSocketPath, defaultStateDir } from "../services/DaemonConfig.js"
import { importLegacy } from "./ImportLegacyCommand.js"

const socket = Options.text("socket").pipe(
  Options.withDescription("Unix socket to serve (default: $PLANTER_SOCKET or <state dir>/planterd.sock)"),
  Options.optional
)
const stateDir = Options.directory("state-dir").pipe(
  Options.withDescription("where the database, cells and logs live (default: $PLANTER_STATE_DIR or ~/.planter/state)"),
  Options.optional
)
const sandboxMode = Options.choice("sandbox-mode", ["disabled", "permissive", "enforced"]).pipe(
  Options.withDescription("enforced refuses jobs the sandbox cannot start; permissive runs them unsandboxed and says why"),
  Options.withDefault("permissive" as const)
)
const keepJobs = Options.boolean("keep-jobs").pipe(
  Options.withDescription("on shutdown, leave jobs running for the next daemon to adopt")
)
const killGrace = Options.integer("kill-grace-ms").pipe(
  Options.withDescription("how long `job kill` waits after SIGTERM before SIGKILL"),
  Options.withDefault(5000)
)

const daemon = Command.make(
  "planterd",
  { socket, stateDir, sandboxMode, keepJobs, killGrace },
  (options) =>
    Effect.gen(function*() {
      const state = Option.match(options.stateDir, { onNone: () => defaultStateDir(), onSome: (dir) => path.resolve(dir) })
      const socketPath = Option.match(options.socket, {
        onNone: () => defaultSocketPath(state),
        onSome: (file) => path.resolve(file)
      })
      const daemon = Daemon.layer({
        socketPath,
        stateDir: state,
        sandboxMode: options.sandboxMode,
        keepJobs: options.keepJobs,
        killGrace: Duration.millis(Math.max(0, options.killGrace))
      })
      yield* Layer.launch(
        Layer.tap(daemon, () => Effect.logInfo(`planterd ${PLANTER_VERSION} listening on ${socketPath}`))
      ).pipe(Effect.withSpan("planterd"))
    })
)

const planterd = daemon.pipe(
  Command.withDescription("The Planter daemon: runs jobs in cells and serves them over a Unix socket"),
  Command.withSubcommands([importLegacy(Effect.map(daemon, (options) => options.stateDir))])
)

const cli = Command.run(planterd, { name: "planterd", version: PLANTER_VERSION })

/**
 * Start-up failures a person can act on (socket taken, database unreadable,
 * bad flags) end with one line saying what to do, not a stack trace.
 * Defects still surface in full through runMain's error reporting.
 */
const program: Effect.Effect<number> = cli(process.argv).pipe(
  // A subcommand (import-legacy) answers its own exit code; the daemon, 0 once stopped cleanly.
  Effect.map((result) => (typeof result === "number" ? result : 0)),
  Effect.catchAll((error) => {
    // @effect/cli has already printed what was wrong with the command line.
    if (ValidationError.isValidationError(error)) return Effect.succeed(2)
    const message = (error as { message?: string }).message ?? String(error)
    return Effect.sync(() => {
      process.stderr.write(`planterd: ${message}\n`)
      return 1
    })
  }),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  // SIGTERM/SIGINT interrupt the daemon: a clean, ordered stop is a success.
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? Number(exit.value) : Cause.isInterruptedOnly(exit.cause) ? 0 : 1)
})
