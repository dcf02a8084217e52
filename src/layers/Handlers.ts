import { Effect, Schema, Stream } from "effect"
import { Cells } from "../services/Cells.js"
import { DaemonConfig } from "../services/DaemonConfig.js"
import { JobRegistry } from "../services/JobRegistry.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import { LimitMonitor } from "../monitor/LimitMonitor.js"
import { LogReader } from "../services/LogReader.js"
import { SandboxRunner } from "../services/SandboxRunner.js"
import { onWire } from "./ErrorMapping.js"
import { followEvents } from "./EventsFeed.js"
import { FiberTree, snapshot } from "./FiberTree.js"
import { JournalFeed } from "../services/JournalFeed.js"
import { InvalidRequest, Unauthorized } from "../rpc/Errors.js"
import { Caller } from "../rpc/Middleware.js"
import { mayTouch, notOwnerMessage } from "../services/Authz.js"
import { StateRepository } from "../services/StateRepository.js"
import { CellId, JobId } from "../rpc/Ids.js"
import { HealthInfo, JournalEntry, JournalPage, VersionInfo } from "../rpc/Models.js"
import { validated } from "../rpc/RequestValidation.js"
import {
  CellCreatePayload,
  CellRemovePayload,
  EventsFollowPayload,
  EventsListPayload,
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
 * The caller may act on what `ownerUid` owns (its own, or anything as an
 * admin); otherwise `unauthorized`, before anything is done.
 */
const ownedByCaller = (what: string, target: string, ownerUid: number | null) =>
  Effect.gen(function*() {
    const caller = yield* Caller
    const { authz } = yield* DaemonConfig
    if (!mayTouch(authz, caller, ownerUid)) {
      return yield* new Unauthorized({ message: notOwnerMessage(caller, what, target, ownerUid, authz) })
    }
  })

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
  const repo = yield* StateRepository
  const monitor = yield* LimitMonitor
  const feed = yield* JournalFeed
  const fiberTree = yield* FiberTree
  const startedAt = Date.now()

  /** The cell and job an events query is limited to. A removed cell's events stay reachable by its id; a name must name a current cell. */
  const eventFilters = (cell_id: string | null, job_id: string | null) =>
    Effect.gen(function*() {
      const cellId = cell_id === null
        ? null
        : cell_id.startsWith("cell-")
        ? yield* Schema.decodeUnknown(CellId)(cell_id).pipe(
          Effect.mapError(() => new InvalidRequest({ message: `invalid cell id ${JSON.stringify(cell_id.slice(0, 80))}` }))
        )
        : (yield* cells.resolve(cell_id)).id
      const jobId = job_id === null ? null : yield* parseJobId(job_id)
      return { cellId, jobId }
    })

  return {
    Version: () => Effect.succeed(new VersionInfo({ version: PLANTER_VERSION, protocol_version: PROTOCOL_VERSION })),
    Health: () =>
      Effect.map(Effect.all([registry.count, supervisor.degraded, monitor.stats]), ([running, degraded, monitorStats]) =>
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
          running_jobs: running,
          monitor: monitorStats
        })),
    CellCreate: validated(CellCreatePayload, (request) =>
      onWire(Effect.flatMap(Caller, (caller) => cells.create({ ...request, owner_uid: caller.uid })))),
    CellList: () => onWire(cells.list),
    CellRemove: validated(CellRemovePayload, ({ cell_id, force }) =>
      onWire(Effect.gen(function*() {
        const cell = yield* cells.resolve(cell_id)
        yield* ownedByCaller("remove cell", `${cell.name} (${cell.id})`, cell.owner_uid)
        return yield* cells.remove(cell.id, { force })
      }))),
    JobRun: validated(JobRunPayload, ({ argv, cell_id, cwd, env, limits, network }) =>
      onWire(Effect.gen(function*() {
        const caller = yield* Caller
        const cell = yield* cells.resolve(cell_id)
        yield* ownedByCaller("run jobs in cell", `${cell.name} (${cell.id})`, cell.owner_uid)
        return yield* supervisor.run(cell, { argv, env, cwd, network, owner_uid: caller.uid, limits })
      }))),
    JobStatus: validated(JobStatusPayload, ({ job_id }) => onWire(Effect.flatMap(parseJobId(job_id), supervisor.get))),
    JobList: validated(JobListPayload, ({ cell_id }) =>
      onWire(
        cell_id === null
          ? supervisor.list(null)
          : Effect.flatMap(cells.resolve(cell_id), (cell) => supervisor.list(cell.id))
      )),
    JobKill: validated(JobKillPayload, ({ force, job_id }) =>
      onWire(Effect.gen(function*() {
        const job = yield* Effect.flatMap(parseJobId(job_id), supervisor.get)
        yield* ownedByCaller("kill job", job.id, job.owner_uid)
        return yield* supervisor.kill(job.id, { force })
      }))),
    EventsList: validated(EventsListPayload, ({ after_id, cell_id, job_id, limit, since_ms }) =>
      onWire(Effect.gen(function*() {
        const { cellId, jobId } = yield* eventFilters(cell_id, job_id)
        const rows = yield* repo.pageEvents({ afterId: after_id, sinceMs: since_ms, cellId, jobId, limit })
        return new JournalPage({
          events: rows.map((row) => new JournalEntry({ ...row })),
          next_id: rows.length === limit ? rows[rows.length - 1]!.id : null
        })
      }))),
    EventsFollow: (raw: unknown) =>
      Stream.unwrap(validated(EventsFollowPayload, ({ after_id, cell_id, job_id, since_ms }) =>
        onWire(Effect.map(eventFilters(cell_id, job_id), (filters) => followEvents(repo, feed, { ...filters, sinceMs: since_ms }, after_id))))(raw)),
    DebugFibers: () => snapshot(fiberTree),
    LogsRead: validated(LogsReadPayload, ({ follow, job_id, max_bytes, offset, stream, wait_ms }) =>
      onWire(Effect.flatMap(parseJobId(job_id), (jobId) => logs.read({ jobId, stream, offset, maxBytes: max_bytes, follow, waitMs: wait_ms }))))
  }
}))
