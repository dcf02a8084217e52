#!/usr/bin/env node
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit } from "effect"
import { PLANTER_VERSION } from "../rpc/Version.js"
import { hoistGlobalOptions } from "./Argv.js"
import { command } from "./Commands.js"
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

const program: Effect.Effect<number> = cli([...process.argv.slice(0, 2), ...hoistGlobalOptions(args)]).pipe(
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

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // Ctrl-C (e.g. during `run --wait` or `logs -f`) ends with 130, as shells report SIGINT; the job keeps running.
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit) ? Number(exit.value) : Cause.isInterruptedOnly(exit.cause) ? 130 : ExitCode.daemonError
    )
})
