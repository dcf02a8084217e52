import {
  Cause,
  Context,
  FiberRef,
  FiberRefs,
  HashMap,
  Inspectable,
  Layer,
  Logger,
  LogLevel,
  Option,
  Tracer
} from "effect"

export type LogFormat = "text" | "json"
export const LOG_LEVELS = ["all", "trace", "debug", "info", "warning", "error", "fatal", "none"] as const
export type LogLevelName = typeof LOG_LEVELS[number]

const levels: Record<LogLevelName, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/** The span a log line was written in, if any: its trace and span ids tie the line to the trace. */
const spanOf = (context: FiberRefs.FiberRefs): Tracer.AnySpan | undefined =>
  Option.getOrUndefined(Context.getOption(FiberRefs.getOrDefault(context, FiberRef.currentContext), Tracer.ParentSpan))

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : Inspectable.toStringUnknown(part))).join(" ")
}

/**
 * One JSON object per line on stdout: `time`, `level`, `message`, `fiber`,
 * `trace_id` and `span_id` of the span it was written in (the ids an OTLP
 * backend shows for that span), the fiber's annotations (`planter.job.id`,
 * `planter.fiber`, …) and the cause, pretty-printed, for a failure.
 */
export const jsonLogger = Logger.make(({ annotations, cause, context, date, fiberId, logLevel, message }) => {
  const line: Record<string, unknown> = {
    time: date.toISOString(),
    level: logLevel.label,
    message: messageText(message),
    fiber: `#${fiberId._tag === "Runtime" ? fiberId.id : "none"}`
  }
  const span = spanOf(context)
  if (span !== undefined) {
    line.trace_id = span.traceId
    line.span_id = span.spanId
  }
  for (const [key, value] of HashMap.toEntries(annotations)) line[key] = value
  if (!Cause.isEmpty(cause)) line.cause = Cause.pretty(cause, { renderErrorCause: true })
  process.stdout.write(`${JSON.stringify(line)}\n`)
})

/**
 * The daemon's logger: Effect's text lines (pretty when run by NodeRuntime), or JSON lines; at `level` and
 * above, or, without one, at the level already in force (info, or what @effect/cli set from `--log-level`).
 */
export const layer = (format: LogFormat, level: LogLevelName | undefined): Layer.Layer<never> =>
  Layer.merge(
    // NodeRuntime.runMain swaps Effect's default logger for its pretty one: JSON replaces whichever is there.
    format === "json"
      ? Layer.mergeAll(
        Logger.remove(Logger.defaultLogger),
        Logger.remove(Logger.prettyLoggerDefault),
        Logger.add(jsonLogger)
      )
      : Layer.empty,
    level === undefined ? Layer.empty : Logger.minimumLogLevel(levels[level])
  )
