#!/usr/bin/env node
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit } from "effect"
import { PLANTER_VERSION } from "../rpc/Version.js"
import { hoistGlobalOptions } from "./Argv.js"
import { command } from "./Commands.js"
import { lostMessage } from "./Global.js"
import { interpret } from "./Help.js"
import { sigintReceived, watchSigint } from "./Interrupt.js"
import { withPlainConsole } from "./Style.js"
import { CliFailure, ExitCode, printJson, write } from "./Output.js"

// `planter logs JOB | head` closes our stdout early: that is the reader's
// choice, not an error worth a stack trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
  throw error
})

const args = process.argv.slice(2)
const json = args.slice(0, args.includes("--") ? args.indexOf("--") : undefined).includes("--json")
const cli = Command.run(command, { name: "planter", version: PLANTER_VERSION })

const hoisted = hoistGlobalOptions(args)
const asked = interpret(hoisted)

const parsed: Effect.Effect<unknown, unknown, NodeContext.NodeContext> = asked._tag === "Help"
  ? Effect.as(write(process.stdout, asked.text), ExitCode.ok)
  : asked._tag === "Unknown"
  ? Effect.fail(new CliFailure({ exitCode: ExitCode.usage, code: "usage", message: asked.message }))
  : cli([...process.argv.slice(0, 2), ...hoisted]).pipe(
    Effect.provide(CliConfig.layer({ showBuiltIns: false })),
    withPlainConsole
  )

const program: Effect.Effect<number> = parsed.pipe(
  Effect.map((result) => (typeof result === "number" ? result : ExitCode.ok)),
  Effect.catchAll((error) => {
    // @effect/cli has already printed what was wrong with the command line.
    if (ValidationError.isValidationError(error)) return Effect.succeed(ExitCode.usage)
    const failure = error instanceof CliFailure
      ? error
      : new CliFailure({ exitCode: ExitCode.daemonError, code: "internal", message: String(error) })
    const report = json
      ? printJson({ error: { code: failure.code, message: failure.message, detail: failure.detail ?? null } })
      : write(process.stderr, `planter: ${failure.message}\n`)
    return Effect.as(report, failure.exitCode)
  }),
  // A defect (a bug, here or in the daemon) still gets a message, never a silent exit.
  Effect.catchAllDefect((defect) =>
    Effect.as(
      json
        ? printJson({ error: { code: "internal", message: String(defect), detail: null } })
        : write(process.stderr, `planter: internal error: ${String(defect)}\n`),
      ExitCode.daemonError
    )
  ),
  Effect.provide(NodeContext.layer)
)

watchSigint()

/**
 * Ctrl-C ends with 130, as shells report SIGINT (`run --wait` has killed
 * its job or detached first, and said so). An interruption without a
 * Ctrl-C is the daemon's connection closing under a waiting command: say
 * so, and end with 4.
 */
const lostConnection = () => {
  const message = lostMessage("")
  if (json) process.stdout.write(JSON.stringify({ error: { code: "connection_lost", message, detail: null } }, null, 2) + "\n")
  else process.stderr.write(`planter: ${message}\n`)
  return ExitCode.connectionLost
}

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit)
        ? Number(exit.value)
        : Cause.isInterruptedOnly(exit.cause)
        ? sigintReceived() ? 130 : lostConnection()
        : ExitCode.daemonError
    )
})
