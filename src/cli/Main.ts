import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Random } from "effect"
import * as FileCopy from "../rpc/FileCopy.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import * as Tracing from "../services/Tracing.js"
import { tracesUrl } from "../services/Tracing.js"
import { hoistGlobalOptions } from "./Argv.js"
import * as CliPlatform from "./CliPlatform.js"
import { command } from "./Commands.js"
import { lostMessage } from "./Global.js"
import { interpret } from "./Help.js"
import { stopSignalExitCode, stopSignalReceived, watchStopSignals } from "./Interrupt.js"
import { CliFailure, ExitCode, printJson, write } from "./Output.js"
import { withPlainConsole } from "./Style.js"

/**
 * The `planter` command: everything that reads the process's state (argv,
 * env, stdout's kind, signals) happens inside `runPlanter`, never at module
 * load, because the CLI also starts from a V8 startup snapshot
 * (src/cli/snapshot.ts) whose module state was frozen at build time.
 */
export const runPlanter = (argv: ReadonlyArray<string>): void => {
  // `planter logs JOB | head` closes our stdout early: that is the reader's
  // choice, not an error worth a stack trace.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0)
    throw error
  })

  const rawArgs = argv.slice(2)
  const ownArgs = rawArgs.slice(0, rawArgs.includes("--") ? rawArgs.indexOf("--") : undefined)
  const json = ownArgs.includes("--json")
  // `--trace` (a global flag, read here because the tracer wraps the whole run) exports this command's
  // spans like OTEL_EXPORTER_OTLP_ENDPOINT does, to that endpoint or the OTLP/HTTP default.
  const trace = ownArgs.includes("--trace")
  const args = trace ? withoutFirst(rawArgs, "--trace") : rawArgs
  const traces = tracesUrl(
    trace && !process.env.OTEL_EXPORTER_OTLP_ENDPOINT && !process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
      ? "http://127.0.0.1:4318"
      : undefined
  )
  const cli = Command.run(command, { name: "planter", version: PLANTER_VERSION })

  const hoisted = hoistGlobalOptions(args)
  const asked = interpret(hoisted)

  const parsed: Effect.Effect<unknown, unknown, CliPlatform.CliPlatform> = asked._tag === "Help"
    ? Effect.as(write(process.stdout, asked.text), ExitCode.ok)
    : asked._tag === "Unknown"
    ? Effect.fail(new CliFailure({ exitCode: ExitCode.usage, code: "usage", message: asked.message }))
    : cli([...argv.slice(0, 2), ...hoisted]).pipe(
      Effect.provideService(CliConfig.CliConfig, CliConfig.make({ showBuiltIns: false })),
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
    // The command's span is the parent of each RPC's client span, and through the socket of the daemon's.
    traces === undefined ? (effect) => effect : withCommandSpan,
    // A command's spans go in one export at exit; one retry (1 s later) is all a person at a terminal waits for
    // when the collector is not there (`--trace` with nothing listening), not the daemon's 3 s.
    // No tracer to provide when tracing is off (most runs): even an empty layer costs a memo map and a scope.
    traces === undefined ? (effect) => effect : Effect.provide(
      Tracing.layer({
        url: traces,
        serviceName: "planter",
        serviceVersion: PLANTER_VERSION,
        shutdownTimeout: "1200 millis"
      })
    ),
    CliPlatform.provide,
    // Effect's default Random is seeded when effect loads, which in a snapshot-started CLI was at build time:
    // seed this run's own.
    Effect.withRandom(Random.make(Math.random()))
  )

  function withoutFirst(list: ReadonlyArray<string>, item: string) {
    const index = list.indexOf(item)
    return [...list.slice(0, index), ...list.slice(index + 1)]
  }

  /** `planter <command words>`, with the trace id on stderr so the operator can look the trace up. */
  function withCommandSpan<A, E, R>(effect: Effect.Effect<A, E, R>) {
    const words = ownArgs.filter((arg, i) => !arg.startsWith("-") && ownArgs[i - 1] !== "--socket").slice(0, 2)
    return Effect.withSpan(
      Effect.zipRight(
        Effect.flatMap(Effect.currentSpan, (span) => write(process.stderr, `planter: trace ${span.traceId}\n`)).pipe(
          Effect.ignore
        ),
        effect
      ),
      `planter ${words.join(" ")}`.trim(),
      { kind: "client", attributes: { "planter.command": words.join(" ") } }
    )
  }

  watchStopSignals()

  /**
   * Ctrl-C ends with 130 and SIGTERM with 143, as shells report them (`run
   * --wait` has killed its job or detached first, and said so). An
   * interruption without either is the daemon's connection closing under a
   * waiting command: say so, and end with 4.
   */
  const lostConnection = () => {
    const message = lostMessage("")
    if (json) {
      process.stdout.write(
        JSON.stringify({ error: { code: "connection_lost", message, detail: null } }, null, 2) + "\n"
      )
    } else process.stderr.write(`planter: ${message}\n`)
    return ExitCode.connectionLost
  }

  const stopSignalExit = () => {
    const signal = stopSignalReceived()
    return signal === undefined ? lostConnection() : stopSignalExitCode(signal)
  }

  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      const code = Exit.isSuccess(exit)
        ? Number(exit.value)
        : Cause.isInterruptedOnly(exit.cause)
        ? stopSignalExit()
        : ExitCode.daemonError
      // The command is over and its output written (synchronously, on Linux): end now rather than wait for
      // node to wind down the closed connection's handles (~10 ms), and without koffi's exit-time fsync.
      if (process.platform === "linux") FileCopy.exitProcess(code)
      else onExit(code)
    }
  })
}
