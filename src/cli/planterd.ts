import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Duration, Effect, Exit, Layer, Option } from "effect"
import * as path from "node:path"
import * as Daemon from "../layers/Daemon.js"
import * as DaemonLogger from "../layers/DaemonLogger.js"
import { LOG_LEVELS } from "../layers/DaemonLogger.js"
import { FiberTreeSupervisor } from "../layers/FiberTree.js"
import { resolveGid, resolveUid } from "../layers/UserDb.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import type { AuthzPolicy, GroupGrant, UidGrant } from "../services/Authz.js"
import { parseGrant } from "../services/Authz.js"
import { defaultSocketPath, defaultStateDir } from "../services/DaemonConfig.js"
import { parseDuration, parseSize } from "../services/Limits.js"
import * as Tracing from "../services/Tracing.js"
import { tracesUrl } from "../services/Tracing.js"
import { importLegacy } from "./ImportLegacyCommand.js"
import { withPlainConsole } from "./Style.js"

const socket = Options.text("socket").pipe(
  Options.withDescription("Unix socket to serve (default: $PLANTER_SOCKET or <state dir>/planterd.sock)"),
  Options.optional
)
const stateDir = Options.directory("state-dir").pipe(
  Options.withDescription("where the database, cells and logs live (default: $PLANTER_STATE_DIR or ~/.planter/state)"),
  Options.optional
)
const sandboxMode = Options.choice("sandbox-mode", ["disabled", "permissive", "enforced"]).pipe(
  Options.withDescription(
    "enforced refuses jobs the sandbox cannot start; permissive runs them unsandboxed and says why"
  ),
  Options.withDefault("permissive" as const)
)
const keepJobs = Options.boolean("keep-jobs").pipe(
  Options.withDescription("on shutdown, leave jobs running for the next daemon to adopt")
)
const killGrace = Options.integer("kill-grace-ms").pipe(
  Options.withDescription("how long `job kill` waits after SIGTERM before SIGKILL"),
  Options.withDefault(5000)
)
const limitGraceOption = (name: string, limit: string) =>
  Options.integer(name).pipe(
    Options.withDescription(`how long a job ${limit} gets after SIGTERM before SIGKILL (default: --kill-grace-ms)`),
    Options.optional
  )
const timeoutGrace = limitGraceOption("timeout-grace-ms", "past its --timeout")
const memoryGrace = limitGraceOption("memory-grace-ms", "past its --max-rss")
const logQuotaGrace = limitGraceOption("log-quota-grace-ms", "past its --max-log")

const monitorInterval = Options.text("monitor-interval").pipe(
  Options.withDescription("how often the usage monitor samples running jobs, e.g. 1s, 250ms"),
  Options.withDefault("1s")
)
const defaultMaxLog = Options.text("default-max-log").pipe(
  Options.withDescription("log quota (stdout + stderr) of a job whose command and cell set none, e.g. 1G, 100M"),
  Options.withDefault("1G")
)

const logRetention = Options.text("log-retention").pipe(
  Options.withDescription(
    "remove finished jobs (records and logs) this long after they ended, e.g. 7d, 12h (default: keep them)"
  ),
  Options.optional
)

const allowUid = Options.text("allow-uid").pipe(
  Options.withDescription(
    "let this user (name or uid) use the socket, with role read, run (default) or admin: --allow-uid ci:run (repeatable)"
  ),
  Options.repeated
)
const allowGroup = Options.text("allow-group").pipe(
  Options.withDescription(
    "let this group's members use the socket, with role read, run (default) or admin: --allow-group viewers:read (repeatable)"
  ),
  Options.repeated
)
const strict = Options.boolean("strict").pipe(
  Options.withDescription(
    "allow only the daemon's own uid, ignoring every grant, and refuse a socket setup that is not private"
  )
)

const otlpEndpoint = Options.text("otlp-endpoint").pipe(
  Options.withDescription(
    "export traces over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (default: $OTEL_EXPORTER_OTLP_ENDPOINT; unset: no export)"
  ),
  Options.optional
)
const logFormat = Options.choice("log-format", ["text", "json"]).pipe(
  Options.withDescription("text lines, or one JSON object per line carrying trace_id and span_id"),
  Options.withDefault("text" as const)
)
// Optional: @effect/cli also reads `--log-level` itself when it comes before the command's own options, sets
// the level around the whole run and drops the flag; a default here would then put `info` back.
const logLevel = Options.choice("log-level", LOG_LEVELS).pipe(
  Options.withDescription("the least severe level logged (default: info)"),
  Options.optional
)

const isHttpUrl = (text: string) => {
  try {
    const url = new URL(text)
    return url.protocol === "http:" || url.protocol === "https:"
  } catch {
    return false
  }
}

/** A flag planterd cannot act on (an unknown user, a bad role, a limit it cannot parse); exit 2 like any usage error. */
class PolicyFlagError extends Error {
  readonly _tag = "PolicyFlagError"
}

/** The policy from the flags; names are resolved once, at start. */
const policyFrom = (options: { allowUid: ReadonlyArray<string>; allowGroup: ReadonlyArray<string>; strict: boolean }) =>
  Effect.try({
    try: (): AuthzPolicy => {
      const daemonUid = process.getuid?.() ?? 0
      const uids: Array<UidGrant> = []
      for (const text of options.allowUid) {
        const grant = parseGrant(text)
        if (typeof grant === "string") throw new PolicyFlagError(`--allow-uid ${grant}`)
        const uid = resolveUid(grant.name)
        if (uid === undefined) {
          throw new PolicyFlagError(
            `--allow-uid ${text}: no user named ${grant.name} (give a user name or a numeric uid)`
          )
        }
        uids.push({ uid, label: grant.name, role: grant.role })
      }
      const groups: Array<GroupGrant> = []
      for (const text of options.allowGroup) {
        const grant = parseGrant(text)
        if (typeof grant === "string") throw new PolicyFlagError(`--allow-group ${grant}`)
        const gid = resolveGid(grant.name)
        if (gid === undefined) {
          throw new PolicyFlagError(
            `--allow-group ${text}: no group named ${grant.name} (create it with \`groupadd ${grant.name}\`, or give a numeric gid)`
          )
        }
        groups.push({ gid, label: grant.name, role: grant.role })
      }
      return { daemonUid, uids, groups, strict: options.strict }
    },
    catch: (error) => error as PolicyFlagError
  })

const daemon = Command.make(
  "planterd",
  {
    socket,
    stateDir,
    sandboxMode,
    keepJobs,
    killGrace,
    allowUid,
    allowGroup,
    strict,
    monitorInterval,
    defaultMaxLog,
    timeoutGrace,
    memoryGrace,
    logQuotaGrace,
    logRetention,
    otlpEndpoint,
    logFormat,
    logLevel
  },
  (options) =>
    Effect.gen(function*() {
      const authz = yield* policyFrom(options)
      const interval = parseDuration(options.monitorInterval)
      if (typeof interval === "string") return yield* Effect.fail(new PolicyFlagError(`--monitor-interval ${interval}`))
      const maxLog = parseSize(options.defaultMaxLog)
      if (typeof maxLog === "string") return yield* Effect.fail(new PolicyFlagError(`--default-max-log ${maxLog}`))
      const retention = Option.isSome(options.logRetention) ? parseDuration(options.logRetention.value) : null
      if (typeof retention === "string") return yield* Effect.fail(new PolicyFlagError(`--log-retention ${retention}`))
      if (authz.strict && (authz.uids.length > 0 || authz.groups.length > 0)) {
        yield* Effect.logWarning(
          "--strict: ignoring every --allow-uid and --allow-group; only the daemon's own uid may use the socket"
        )
      }
      const state = Option.match(options.stateDir, {
        onNone: () => defaultStateDir(),
        onSome: (dir) => path.resolve(dir)
      })
      const socketPath = Option.match(options.socket, {
        onNone: () => defaultSocketPath(state),
        onSome: (file) => path.resolve(file)
      })
      const fiberTree = new FiberTreeSupervisor()
      const daemonLayer = Daemon.layer({
        socketPath,
        stateDir: state,
        sandboxMode: options.sandboxMode,
        keepJobs: options.keepJobs,
        killGrace: Duration.millis(Math.max(0, options.killGrace)),
        limitGrace: {
          ...Option.match(options.timeoutGrace, {
            onNone: () => ({}),
            onSome: (ms) => ({ timeout: Duration.millis(Math.max(0, ms)) })
          }),
          ...Option.match(options.memoryGrace, {
            onNone: () => ({}),
            onSome: (ms) => ({ memory_limit: Duration.millis(Math.max(0, ms)) })
          }),
          ...Option.match(options.logQuotaGrace, {
            onNone: () => ({}),
            onSome: (ms) => ({ log_quota: Duration.millis(Math.max(0, ms)) })
          })
        },
        authz,
        monitorInterval: Duration.millis(interval),
        defaultMaxLogBytes: maxLog,
        ...(retention === null ? {} : { logRetention: Duration.millis(retention) })
      }, fiberTree)
      const traces = tracesUrl(Option.getOrUndefined(options.otlpEndpoint))
      if (traces !== undefined && !isHttpUrl(traces)) {
        return yield* Effect.fail(
          new PolicyFlagError(
            `--otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT: ${
              JSON.stringify(traces)
            } is not an http(s) URL; give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318`
          )
        )
      }
      // Every fiber forked inside the daemon is tracked for `planter debug fibers`.
      yield* Layer.launch(daemonLayer).pipe(
        Effect.withSpan("planterd", { attributes: { "planter.version": PLANTER_VERSION } }),
        Effect.supervised(fiberTree),
        Effect.provide(Tracing.layer({ url: traces, serviceName: "planterd", serviceVersion: PLANTER_VERSION }))
      )
    }).pipe(Effect.provide(DaemonLogger.layer(options.logFormat, Option.getOrUndefined(options.logLevel))))
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
  // Help without completions/wizard/log-level boilerplate, and without ANSI codes when piped.
  Effect.provide(CliConfig.layer({ showBuiltIns: false })),
  withPlainConsole,
  // A subcommand (import-legacy) answers its own exit code; the daemon, 0 once stopped cleanly.
  Effect.map((result) => (typeof result === "number" ? result : 0)),
  Effect.catchAll((error) => {
    // @effect/cli has already printed what was wrong with the command line.
    if (ValidationError.isValidationError(error)) return Effect.succeed(2)
    if (error instanceof PolicyFlagError) {
      return Effect.sync(() => {
        process.stderr.write(`planterd: ${error.message}\n`)
        return 2
      })
    }
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
