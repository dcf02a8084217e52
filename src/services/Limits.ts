/**
 * Resource limits: parsing human units, checking values, and combining a
 * job's limits with its cell's defaults and the daemon's default log quota.
 * Pure functions, shared by the CLI (flags) and the daemon (requests).
 */
import type { LimitName, ResourceLimits } from "../rpc/Models.js"
import { LIMIT_NAMES } from "../rpc/Models.js"
import { LimitRejected } from "./DomainErrors.js"

/** Every limit present, each null (none) or a positive whole number. */
export interface Limits {
  readonly timeout_ms: number | null
  readonly max_rss_bytes: number | null
  readonly max_log_bytes: number | null
}

export const NO_LIMITS: Limits = { timeout_ms: null, max_rss_bytes: null, max_log_bytes: null }

/** The daemon-wide log quota of a job that sets none (and whose cell sets none): 1 GiB. */
export const DEFAULT_MAX_LOG_BYTES = 1024 ** 3

const UNIT_BYTES: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }

/**
 * A size such as `512M`, `1.5G`, `100MiB`, `4096`: binary multiples (K =
 * 1024), a bare number is bytes. Answers a positive whole number of bytes,
 * or a sentence saying what is wrong.
 */
export const parseSize = (text: string): number | string => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text)
  if (!match) {
    return `${JSON.stringify(text)} is not a size: give bytes with an optional unit, e.g. 4096, 512K, 100M, 2G`
  }
  const bytes = Math.floor(Number(match[1]) * UNIT_BYTES[match[2]!.toLowerCase()]!)
  if (!Number.isSafeInteger(bytes)) return `${JSON.stringify(text)} is too large`
  if (bytes <= 0) return `${JSON.stringify(text)}: a size limit must be at least 1 byte`
  return bytes
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A duration such as `30s`, `500ms`, `5m`, `1.5h`, `1d`: the unit is required. Answers whole milliseconds, or why not. */
export const parseDuration = (text: string): number | string => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text)
  if (!match) {
    return `${JSON.stringify(text)} is not a duration: give a number and a unit (ms, s, m, h, d), e.g. 30s, 500ms, 5m`
  }
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2]!.toLowerCase()]!)
  if (!Number.isSafeInteger(ms)) return `${JSON.stringify(text)} is too long`
  if (ms <= 0) return `${JSON.stringify(text)}: a timeout must be at least 1 ms`
  return ms
}

const FLAG: Record<LimitName, string> = { timeout_ms: "timeout", max_rss_bytes: "max-rss", max_log_bytes: "max-log" }

/** Checks limits from a request: each absent, null, or a positive whole number. */
export const checkLimits = (
  limits: { readonly [K in LimitName]?: number | null | undefined } | null
): Limits | LimitRejected => {
  const checked: Record<string, number | null> = { ...NO_LIMITS }
  for (const name of LIMIT_NAMES) {
    const value = limits?.[name] ?? null
    if (value !== null && !(Number.isSafeInteger(value) && value > 0)) {
      return new LimitRejected({
        message: `${name}: expected a positive whole number of ${
          name === "timeout_ms" ? "milliseconds" : "bytes"
        } or null, got ${value}`
      })
    }
    checked[name] = value
  }
  return checked as unknown as Limits
}

/** Limits as stored (a record of the prototype may lack fields, or be null). */
export const fromStored = (limits: ResourceLimits): Limits => ({
  timeout_ms: positiveOrNull(limits?.timeout_ms),
  max_rss_bytes: positiveOrNull(limits?.max_rss_bytes),
  max_log_bytes: positiveOrNull(limits?.max_log_bytes)
})

// The prototype wrote 0 for "none" in places: only a positive value limits anything.
const positiveOrNull = (value: number | null | undefined) => (typeof value === "number" && value > 0 ? value : null)

/**
 * A job's effective limits: each of its own where set, else its cell's
 * default; the log quota falls back to the daemon's default so no job
 * writes unbounded. A job may tighten its cell's limits, never loosen them.
 */
export const effectiveLimits = (cell: Limits, job: Limits, defaultMaxLog: number): Limits | LimitRejected => {
  const result: Record<string, number | null> = {}
  for (const name of LIMIT_NAMES) {
    const own = job[name]
    const inherited = cell[name]
    if (own !== null && inherited !== null && own > inherited) {
      return new LimitRejected({
        message: `--${FLAG[name]} ${formatLimit(name, own)} would loosen the cell's limit of ${
          formatLimit(name, inherited)
        }: a job may only tighten its cell's limits`
      })
    }
    result[name] = own ?? inherited
  }
  result["max_log_bytes"] ??= defaultMaxLog
  return result as unknown as Limits
}

/** 612 MiB, 1.5 GiB, 300 B. */
export const formatBytes = (bytes: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0
    ? `${bytes} B`
    : `${value >= 10 ? Math.round(value) : value.toFixed(1).replace(/\.0$/, "")} ${units[unit]}`
}

/** 2 s, 1.5 s, 250 ms, 5 min. */
export const formatDuration = (ms: number): string => {
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, "")} s`
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1).replace(/\.0$/, "")} min`
  return `${(ms / 3_600_000).toFixed(1).replace(/\.0$/, "")} h`
}

export const formatLimit = (
  name: LimitName,
  value: number
) => (name === "timeout_ms" ? formatDuration(value) : formatBytes(value))

/** Which limit a termination reason names. */
export const limitOfReason = (reason: string | null): LimitName | undefined =>
  reason === "timeout"
    ? "timeout_ms"
    : reason === "memory_limit"
    ? "max_rss_bytes"
    : reason === "log_quota"
    ? "max_log_bytes"
    : undefined
