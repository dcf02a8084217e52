import type { CellId, JobId } from "../../src/rpc/Ids.js"
import { Job, JobCommand, JobSandbox } from "../../src/rpc/Models.js"

/**
 * A job that ran `argv` unsandboxed and exited 0 at `atMs`: the record tests seed straight into the repository
 * (thousands of them, without thousands of spawns).
 */
export const finishedJob = (id: string, cellId: string, argv: readonly [string, ...Array<string>], atMs: number) =>
  new Job({
    id: id as JobId,
    cell_id: cellId as CellId,
    command: new JobCommand({ argv, cwd: "/", env: {}, limits: null }),
    status: "exited",
    exit_code: 0,
    signal: null,
    termination_reason: "exited",
    pid: null,
    pid_start_time: null,
    started_at_ms: atMs,
    finished_at_ms: atMs,
    sandbox: new JobSandbox({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null })
  })
