#!/usr/bin/env node
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Duration, Effect, Layer, Option } from "effect"
import * as path from "node:path"
import * as Daemon from "../layers/Daemon.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import { defaultSocketPath, defaultStateDir } from "../services/DaemonConfig.js"

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

const planterd = Command.make(
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
).pipe(Command.withDescription("The Planter daemon: runs jobs in cells and serves them over a Unix socket"))

const cli = Command.run(planterd, { name: "planterd", version: PLANTER_VERSION })

cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: false })
)
