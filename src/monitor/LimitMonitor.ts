import { Context } from "effect"
import type { Effect } from "effect"
import type { Job, LimitName } from "../rpc/Models.js"
import { JobUsage, LimitDetail } from "../rpc/Models.js"
import type { LimitReason } from "../services/JobSupervisor.js"
import type { Limits } from "../services/Limits.js"
import type { TreeUsage } from "../services/ProcessProbe.js"

/** What `health` says of the monitor: when it last ticked, and what it costs. */
export interface MonitorStats {
  readonly interval_ms: number
  readonly last_tick_at_ms: number | null
  readonly ticks: number
  /** Times a failed tick loop was restarted (each logged with its cause). */
  readonly restarts: number
  readonly last_tick_cpu_us: number
  readonly mean_tick_cpu_us: number
  /** mean tick CPU / interval: the share of one core the monitor takes. */
  readonly cpu_percent_of_core: number
}

/**
 * Samples the usage of every running job once per interval (one process
 * table read for all of them), keeps it in memory, and ends a job that
 * passes a limit through the JobSupervisor. Timeouts are timers, one per job.
 */
export interface LimitMonitorShape {
  readonly stats: Effect.Effect<MonitorStats>
}

export class LimitMonitor extends Context.Tag("planter/LimitMonitor")<LimitMonitor, LimitMonitorShape>() {}

/**
 * A job's usage from one sample: its tree's totals (from the snapshot), its
 * log bytes, its elapsed time, the CPU share since the previous sample, and
 * the peak RSS so far.
 */
export const usageOf = (
  job: Job,
  tree: TreeUsage,
  logBytes: number,
  now: number,
  previous: JobUsage | null
): JobUsage => {
  const span = previous === null ? 0 : now - previous.sampled_at_ms
  const cpuPercent = previous === null || span <= 0
    ? null
    : Math.max(0, Math.round(((tree.cpuMs - previous.cpu_ms) / span) * 1000) / 10)
  return new JobUsage({
    sampled_at_ms: now,
    rss_bytes: tree.rssBytes,
    cpu_ms: tree.cpuMs,
    cpu_percent: cpuPercent,
    processes: tree.processes,
    log_bytes: logBytes,
    elapsed_ms: Math.max(0, now - job.started_at_ms),
    peak_rss_bytes: Math.max(tree.rssBytes, previous?.peak_rss_bytes ?? 0)
  }, true) // unchecked: plain numbers computed here, made for every running job at every tick
}

const REASON: Record<Exclude<LimitName, "timeout_ms">, LimitReason> = {
  max_rss_bytes: "memory_limit",
  max_log_bytes: "log_quota"
}

/**
 * The limit a sample breaks, if any: memory first, then the log quota (the
 * timeout is a timer of its own). A value equal to its limit is within it.
 */
export const breachOf = (
  limits: Limits,
  usage: JobUsage
): { readonly reason: LimitReason; readonly detail: LimitDetail } | undefined => {
  for (const [name, observed] of [["max_rss_bytes", usage.rss_bytes], ["max_log_bytes", usage.log_bytes]] as const) {
    const limit = limits[name]
    if (limit !== null && observed > limit) {
      return { reason: REASON[name], detail: new LimitDetail({ limit, observed, at_ms: usage.sampled_at_ms }) }
    }
  }
  return undefined
}
