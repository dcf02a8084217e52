#!/usr/bin/env node
import { Command, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Exit } from "effect"
import { PLANTER_VERSION } from "../rpc/Handlers.js"
import { command } from "./Commands.js"
import { CliFailure, ExitCode, printJson, write } from "./Output.js"

/**
 * `--json` and `--socket` are global, but people type them after the
 * subcommand (`planter job ls --json`). They are moved in front of it here,
 * never past `--`, where the job's own argv begins.
 */
export const hoistGlobalOptions = (args: ReadonlyArray<string>): Array<string> => {
  const end = args.indexOf("--")
  const head = end < 0 ? [...args] : args.slice(0, end)
  const tail = end < 0 ? [] : args.slice(end)
  const globals: Array<string> = []
  const rest: Array<string> = []
  for (let i = 0; i < head.length; i++) {
    const arg = head[i]!
    if (arg === "--json") globals.push(arg)
    else if (arg === "--socket" && i + 1 < head.length) globals.push(arg, head[++i]!)
    else if (arg.startsWith("--socket=")) globals.push("--socket", arg.slice("--socket=".length))
    else rest.push(arg)
  }
  return [...globals, ...rest, ...tail]
}

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
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? Number(exit.value) : ExitCode.daemonError)
})
