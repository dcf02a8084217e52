import { Effect, Schema } from "effect"
import { Cells } from "../services/Cells.js"
import { DaemonConfig } from "../services/DaemonConfig.js"
import { JobRegistry } from "../services/JobRegistry.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import { LogReader } from "../services/LogReader.js"
import { SandboxRunner } from "../services/SandboxRunner.js"
import { onWire } from "./ErrorMapping.js"
import { InvalidRequest } from "../rpc/Errors.js"
import { JobId } from "../rpc/Ids.js"
import { HealthInfo, VersionInfo } from "../rpc/Models.js"
import { validated } from "../rpc/RequestValidation.js"
import {
  CellCreatePayload,
  CellRemovePayload,
  JobKillPayload,
  JobListPayload,
  JobRunPayload,
  JobStatusPayload,
  LogsReadPayload,
  PlanterWireRpcs,
  PROTOCOL_VERSION
} from "../rpc/Rpcs.js"
import { PLANTER_VERSION } from "../rpc/Version.js"

/** Job ids are checked here, before they reach a path or a query. */
const parseJobId = (raw: string) =>
  Schema.decodeUnknown(JobId)(raw).pipe(
    Effect.mapError(() =>
      new InvalidRequest({
        message: `invalid job id ${JSON.stringify(raw.slice(0, 80))}${raw.length > 80 ? "…" : ""}: a job id looks like job-<letters and digits>, as printed by \`planter run\` or \`planter job ls\``
      })
    )
  )

/**
 * Thin handlers: decode the payload with its strict schema (a bad field is
 * `invalid_request` naming it), call the services, answer.
 */
export const HandlersLive = PlanterWireRpcs.toLayer(Effect.gen(function*() {
  const config = yield* DaemonConfig
  const cells = yield* Cells
  const supervisor = yield* JobSupervisor
  const registry = yield* JobRegistry
  const logs = yield* LogReader
  const sandbox = yield* SandboxRunner
  const startedAt = Date.now()

  return {
    Version: () => Effect.succeed(new VersionInfo({ version: PLANTER_VERSION, protocol_version: PROTOCOL_VERSION })),
    Health: () =>
      Effect.map(Effect.all([registry.count, supervisor.degraded]), ([running, degraded]) =>
        new HealthInfo({
          ok: degraded === null,
          degraded,
          version: PLANTER_VERSION,
          pid: process.pid,
          uptime_ms: Date.now() - startedAt,
          socket: config.socketPath,
          state_dir: config.stateDir,
          sandbox: {
            mode: sandbox.status.mode,
            backend: sandbox.status.backend,
            available: sandbox.status.available,
            unavailable_reason: sandbox.status.unavailableReason
          },
          running_jobs: running
        })),
    CellCreate: validated(CellCreatePayload, (request) => onWire(cells.create(request))),
    CellList: () => onWire(cells.list),
    CellRemove: validated(CellRemovePayload, ({ cell_id, force }) => onWire(cells.remove(cell_id, { force }))),
    JobRun: validated(JobRunPayload, ({ argv, cell_id, cwd, env, network }) =>
      onWire(Effect.flatMap(cells.resolve(cell_id), (cell) => supervisor.run(cell, { argv, env, cwd, network })))),
    JobStatus: validated(JobStatusPayload, ({ job_id }) => onWire(Effect.flatMap(parseJobId(job_id), supervisor.get))),
    JobList: validated(JobListPayload, ({ cell_id }) =>
      onWire(
        cell_id === null
          ? supervisor.list(null)
          : Effect.flatMap(cells.resolve(cell_id), (cell) => supervisor.list(cell.id))
      )),
    JobKill: validated(JobKillPayload, ({ force, job_id }) =>
      onWire(Effect.flatMap(parseJobId(job_id), (id) => supervisor.kill(id, { force })))),
    LogsRead: validated(LogsReadPayload, ({ follow, job_id, max_bytes, offset, stream, wait_ms }) =>
      onWire(Effect.flatMap(parseJobId(job_id), (jobId) => logs.read({ jobId, stream, offset, maxBytes: max_bytes, follow, waitMs: wait_ms }))))
  }
}))
