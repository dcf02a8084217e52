import type { Job } from "./Models.js"

/**
 * How a job ended, in one word scripts can match on (`outcome` in
 * `--json`), beside `status`, which stays `exited` for every ended job:
 * `running` (also while starting), `exited` (ended on its own, by exit),
 * `killed` (by a signal, or ended by `job kill`, a cell removal or a
 * daemon shutdown), `timeout`, `memory_limit`, `log_quota`, `lost`
 * (its end was never seen), `unknown` (imported without one).
 */
export type JobOutcome = "running" | "exited" | "killed" | "timeout" | "memory_limit" | "log_quota" | "lost" | "unknown"

export const jobOutcome = (job: Job): JobOutcome => {
  if (job.status !== "exited") return "running"
  switch (job.termination_reason) {
    case "timeout":
    case "memory_limit":
    case "log_quota":
    case "lost":
    case "unknown":
      return job.termination_reason
    case "terminated_by_user":
    case "forced_kill":
    case "daemon_shutdown":
      return "killed"
    default:
      return job.signal !== null ? "killed" : "exited"
  }
}

/** The STATUS column of `planter job ls`: `running`, `exited 0`, `exited 3`, `killed (SIGTERM)`, `timeout`, `lost`. */
export const statusText = (job: Job): string => {
  const outcome = jobOutcome(job)
  switch (outcome) {
    case "running":
      return job.status
    case "exited":
      return job.exit_code === null ? "exited" : `exited ${job.exit_code}`
    case "killed":
      return job.signal !== null
        ? `killed (${job.signal})`
        : job.exit_code !== null
        ? `killed (exit ${job.exit_code})`
        : "killed"
    default:
      return outcome
  }
}
