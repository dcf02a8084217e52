import type { Duration } from "effect"
import { Effect, Layer } from "effect"
import * as os from "node:os"

/**
 * Where spans go, from the flag or the standard OpenTelemetry variables:
 * `--otlp-endpoint URL` / `OTEL_EXPORTER_OTLP_ENDPOINT` name the collector's
 * base URL (`/v1/traces` is appended), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
 * the full traces URL. Undefined: tracing stays off.
 */
export const tracesUrl = (
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env
): string | undefined => {
  const base = flag ?? nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT)
  if (base !== undefined) return `${base.replace(/\/+$/, "")}/v1/traces`
  return nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
}

const nonEmpty = (value: string | undefined) => (value === undefined || value.trim() === "" ? undefined : value.trim())

/** `http/protobuf` when OTEL_EXPORTER_OTLP_PROTOCOL asks for it; JSON otherwise (every OTLP/HTTP receiver takes both). */
const wantsProtobuf = (env: NodeJS.ProcessEnv) =>
  (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL) === "http/protobuf"

/** OTEL_BSP_SCHEDULE_DELAY (ms between exports, the SDKs' variable), default 5 s. */
const exportIntervalMs = (env: NodeJS.ProcessEnv) => {
  const ms = Number(env.OTEL_BSP_SCHEDULE_DELAY)
  return Number.isFinite(ms) && ms > 0 ? ms : 5000
}

/**
 * A tracer exporting every span over OTLP/HTTP to `url`, through
 * @effect/opentelemetry's OtlpTracer (Effect's own HttpClient, no
 * OpenTelemetry SDK). Its modules are imported only here, when tracing is
 * on, so a process without an endpoint loads none of it and keeps Effect's
 * built-in tracer. Spans still buffered when the layer's scope closes are
 * flushed then, for at most `shutdownTimeout` (default 3 s): the exporter
 * retries a failed export every second, so that is also how long a process
 * waits at exit when no collector answers.
 */
export const otlpLayer = (options: {
  readonly url: string
  readonly serviceName: string
  readonly serviceVersion: string
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  readonly env?: NodeJS.ProcessEnv
}): Layer.Layer<never> =>
  Layer.unwrapEffect(
    Effect.promise(async () => {
      const env = options.env ?? process.env
      // FetchHttpClient (Node's global fetch), not NodeHttpClient: the latter loads undici up front,
      // which measured +12 MB RSS and ~0.4 s of start-up (docs/benchmarks.md, "Tracing cost").
      const [OtlpTracer, OtlpSerialization, FetchHttpClient] = await Promise.all([
        import("@effect/opentelemetry/OtlpTracer"),
        import("@effect/opentelemetry/OtlpSerialization"),
        import("@effect/platform/FetchHttpClient")
      ])
      return OtlpTracer.layer({
        url: options.url,
        resource: {
          serviceName: options.serviceName,
          serviceVersion: options.serviceVersion,
          attributes: { "host.name": os.hostname(), "process.pid": process.pid, "os.type": process.platform }
        },
        exportInterval: exportIntervalMs(env),
        shutdownTimeout: options.shutdownTimeout ?? "3 seconds"
      }).pipe(
        Layer.provide(wantsProtobuf(env) ? OtlpSerialization.layerProtobuf : OtlpSerialization.layerJson),
        Layer.provide(FetchHttpClient.layer)
      )
    })
  )

/** The tracer for `url`, or nothing at all when tracing is off. */
export const layer = (options: {
  readonly url: string | undefined
  readonly serviceName: string
  readonly serviceVersion: string
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}): Layer.Layer<never> => options.url === undefined ? Layer.empty : otlpLayer({ ...options, url: options.url })
