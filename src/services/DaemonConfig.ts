import { Context, Duration, Layer } from "effect"
import * as path from "node:path"
import type { SandboxMode } from "../rpc/Models.js"
import type { AuthzPolicy } from "./Authz.js"

export interface DaemonConfigShape {
  readonly socketPath: string
  readonly stateDir: string
  readonly sandboxMode: SandboxMode
  /** On shutdown, leave jobs running for the next daemon to adopt instead of killing them. */
  readonly keepJobs: boolean
  /** How long `job kill` waits after SIGTERM before SIGKILL. */
  readonly killGrace: Duration.Duration
  /**
   * The grace period of a kill for a breached limit, per limit (each
   * defaults to killGrace): how long the job gets after SIGTERM before SIGKILL.
   */
  readonly limitGrace?: {
    readonly timeout?: Duration.Duration
    readonly memory_limit?: Duration.Duration
    readonly log_quota?: Duration.Duration
  }
  /** Who may use the socket, and with which role. */
  readonly authz: AuthzPolicy
  /** How often the LimitMonitor samples usage (default 1 s). */
  readonly monitorInterval?: Duration.Duration
  /** The log quota of a job when neither it nor its cell sets one (default DEFAULT_MAX_LOG_BYTES, 1 GiB). */
  readonly defaultMaxLogBytes?: number
  /** Remove finished jobs (records and logs) this long after they ended (absent: keep them). */
  readonly logRetention?: Duration.Duration
}

export class DaemonConfig extends Context.Tag("planter/DaemonConfig")<DaemonConfig, DaemonConfigShape>() {
  static layer = (config: DaemonConfigShape) => Layer.succeed(DaemonConfig, config)
}

export { defaultSocketPath, defaultStateDir } from "../rpc/Defaults.js"

export const statePaths = (stateDir: string) => ({
  database: path.join(stateDir, "planter.db"),
  cells: path.join(stateDir, "cells"),
  logs: path.join(stateDir, "logs"),
  tmp: path.join(stateDir, "tmp"),
  /** Per-job status files written by the launcher (exit codes that outlive a daemon). */
  run: path.join(stateDir, "run"),
  /** Rendered macOS sandbox profiles, one per running job. */
  sandbox: path.join(stateDir, "sandbox")
})
