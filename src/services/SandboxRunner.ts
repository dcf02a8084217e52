import { Context, Schema } from "effect"
import type { Effect } from "effect"
import type { Writable } from "node:stream"
import type { JobSandbox, NetworkPolicy, SandboxBackend, SandboxMode } from "../rpc/Models.js"

/** What one job needs from its sandbox. Every path is absolute and already exists. */
export interface SandboxRequest {
  readonly jobId: string
  readonly argv: readonly [string, ...Array<string>]
  readonly cwd: string
  readonly env: Readonly<Record<string, string>>
  /** The cell's directory: visible and writable. */
  readonly cellDir: string
  /** The job's private temp directory (its TMPDIR): visible and writable. */
  readonly tmpDir: string
  /** Extra read-only paths granted to the cell. */
  readonly readPaths: ReadonlyArray<string>
  readonly network: NetworkPolicy
  /**
   * The job's log files, created (0600) as the job starts and inherited by
   * it as stdout and stderr: the job writes its output there itself.
   */
  readonly stdoutPath: string
  readonly stderrPath: string
  /**
   * Where a launcher records the job's exit (bubblewrap's
   * `--json-status-fd`), so it is known even if it happens while no daemon
   * runs. Created and inherited as descriptor 3 only by a backend whose
   * launcher writes it; the others leave no such file.
   */
  readonly statusPath: string
  /** A pipe the daemon writes as the job's stdin (`run -i`); absent or false: /dev/null. */
  readonly stdinPipe?: boolean
}

/** The descriptor number the job's launcher writes its status to. */
export const STATUS_FD = 3

export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface StartedProcess {
  /** The daemon's end of the job's stdin pipe, when the request asked for one. */
  readonly stdin: Writable | null
  readonly pid: number
  readonly sandbox: JobSandbox
  /** Completes when the leader exits; safe to await more than once. */
  readonly exit: Effect.Effect<ProcessExit>
}

export interface SandboxStatus {
  readonly mode: SandboxMode
  readonly backend: SandboxBackend
  readonly available: boolean
  readonly unavailableReason: string | null
}

/** The sandbox could not start and the mode is `enforced`: the job does not run. */
export class SandboxStartError extends Schema.TaggedError<SandboxStartError>()("SandboxStartError", {
  message: Schema.String
}) {}

/** The job's log or status file could not be created (a full or read-only disk, a removed state dir): nothing ran. */
export class OutputFilesError extends Schema.TaggedError<OutputFilesError>()("OutputFilesError", {
  message: Schema.String,
  /** The errno's name, e.g. ENOSPC. */
  code: Schema.String
}) {}

/** The command itself could not be started (not found, not executable). */
export class SpawnError extends Schema.TaggedError<SpawnError>()("SpawnError", {
  message: Schema.String
}) {}

/**
 * Starts one command under the configured mode and backend, with its output
 * going straight to the given descriptors.
 */
export interface SandboxRunnerShape {
  readonly status: SandboxStatus
  readonly start: (
    request: SandboxRequest
  ) => Effect.Effect<StartedProcess, SandboxStartError | SpawnError | OutputFilesError>
}

export class SandboxRunner extends Context.Tag("planter/SandboxRunner")<SandboxRunner, SandboxRunnerShape>() {}
