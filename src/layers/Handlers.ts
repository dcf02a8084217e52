import { Effect, Schema, Stream } from "effect"
import { LimitMonitor } from "../monitor/LimitMonitor.js"
import { InvalidRequest, Unauthorized } from "../rpc/Errors.js"
import { CellId } from "../rpc/Ids.js"
import { LogFileInfo, LogMarksPage } from "../rpc/LogModels.js"
import { Caller } from "../rpc/Middleware.js"
import { CellInfo, HealthInfo, JournalEntry, JournalPage, VersionInfo } from "../rpc/Models.js"
import { validated } from "../rpc/RequestValidation.js"
import {
  CellCreatePayload,
  CellListPayload,
  CellRemovePayload,
  CellShowPayload,
  DEFAULT_LIST_PAGE,
  EventsFollowPayload,
  EventsListPayload,
  JobKillPayload,
  JobListPayload,
  JobPrunePayload,
  JobRemovePayload,
  JobRunPayload,
  JobStatusPayload,
  JobStdinPayload,
  LogsMarksPayload,
  LogsOpenPayload,
  LogsReadPayload,
  PlanterWireRpcs,
  PROTOCOL_VERSION
} from "../rpc/Rpcs.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import { mayTouch, notOwnerMessage } from "../services/Authz.js"
import { Cells } from "../services/Cells.js"
import { DaemonConfig } from "../services/DaemonConfig.js"
import { resolveJobRef } from "../services/JobRefs.js"
import { JobRegistry } from "../services/JobRegistry.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import { JournalFeed } from "../services/JournalFeed.js"
import { LogReader } from "../services/LogReader.js"
import { cutToPageBytes, decodeCursor } from "../services/Paging.js"
import { SandboxRunner } from "../services/SandboxRunner.js"
import { StateRepository } from "../services/StateRepository.js"
import { onWire } from "./ErrorMapping.js"
import { followEvents } from "./EventsFeed.js"
import { FiberTree, snapshot } from "./FiberTree.js"
import { makeJobHousekeeping } from "./JobHousekeeping.js"
import { handOver } from "./LogHandoff.js"

/**
 * Every RPC that takes a JOB (an id or a name) turns it into a job id here,
 * through the one resolver (JobRefs.resolveJobRef): ids are checked before
 * they reach a path or a query, names are looked up.
 */
const parseJobId = (raw: string) => Effect.flatMap(StateRepository, (repo) => resolveJobRef(repo, raw))

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
 * Health is the hot path: its answer is built from the daemon's own typed
 * values and checked against its schema when the RPC server encodes it, so
 * the constructor's own validation (which derives the class's type AST and
 * compiles a parser afresh each time: ~10 KB and tens of µs per call) is
 * skipped.
 */
const HEALTH_UNCHECKED = { disableValidation: true } as const

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
  const housekeeping = makeJobHousekeeping(repo, config.stateDir)

  /**
   * The job a log request names, found by the same lookup JobStatus uses
   * (parse, then the job's record): every log RPC resolves its JOB here, so
   * whatever JobStatus accepts as a JOB, the logs accept too.
   */
  const logsJob = (raw: string) => Effect.map(Effect.flatMap(parseJobId(raw), supervisor.get), (job) => job.id)

  /** The cell and job an events query is limited to. A removed cell's events stay reachable by its id; a name must name a current cell. */
  const eventFilters = (cell_id: string | null, job_id: string | null) =>
    Effect.gen(function*() {
      const cellId = cell_id === null
        ? null
        : cell_id.startsWith("cell-")
        ? yield* Schema.decodeUnknown(CellId)(cell_id).pipe(
          Effect.mapError(() =>
            new InvalidRequest({ message: `invalid cell id ${JSON.stringify(cell_id.slice(0, 80))}` })
          )
        )
        : (yield* cells.resolve(cell_id)).id
      const jobId = job_id === null ? null : yield* parseJobId(job_id)
      return { cellId, jobId }
    })

  return {
    Version: () => Effect.succeed(new VersionInfo({ version: PLANTER_VERSION, protocol_version: PROTOCOL_VERSION })),
    // Three reads chained rather than `Effect.all`: its tuple machinery (input resolution, forEach, a loop of
    // closures) was, per Health call, code of its own for V8 to warm up and optimize (docs/benchmarks.md).
    Health: () =>
      Effect.flatMap(
        registry.count,
        (running) =>
          Effect.flatMap(supervisor.degraded, (degraded) =>
            Effect.map(monitor.stats, (monitorStats) =>
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
              }, HEALTH_UNCHECKED)))
      ),
    CellCreate: validated(
      CellCreatePayload,
      (request) => onWire(Effect.flatMap(Caller, (caller) => cells.create({ ...request, owner_uid: caller.uid })))
    ),
    CellList: validated(CellListPayload, ({ after, limit }) =>
      onWire(Effect.gen(function*() {
        const cursor = after == null ? null : yield* decodeCursor(after, "cell")
        return yield* cells.page({ after: cursor, limit: limit ?? DEFAULT_LIST_PAGE })
      }))),
    CellRemove: validated(CellRemovePayload, ({ cell_id, force }) =>
      onWire(Effect.gen(function*() {
        const cell = yield* cells.resolve(cell_id)
        yield* ownedByCaller("remove cell", `${cell.name} (${cell.id})`, cell.owner_uid)
        return yield* cells.remove(cell.id, { force })
      }))),
    JobRun: validated(
      JobRunPayload,
      ({ argv, cell_id, cwd, env, labels, limits, name, network, stdin }) =>
        onWire(Effect.gen(function*() {
          const caller = yield* Caller
          const cell = yield* cells.resolve(cell_id)
          yield* ownedByCaller("run jobs in cell", `${cell.name} (${cell.id})`, cell.owner_uid)
          return yield* supervisor.run(cell, {
            argv,
            env,
            cwd,
            network,
            owner_uid: caller.uid,
            limits,
            name,
            labels,
            stdin
          })
        }))
    ),
    JobStatus: validated(JobStatusPayload, ({ job_id }) => onWire(Effect.flatMap(parseJobId(job_id), supervisor.get))),
    JobList: validated(
      JobListPayload,
      ({ after, cell_id, labels, limit, name, since_ms, status, until_ms }) =>
        onWire(Effect.gen(function*() {
          const cellId = cell_id == null ? null : (yield* cells.resolve(cell_id)).id
          const before = after == null ? null : yield* decodeCursor(after, "job")
          return yield* supervisor.page({
            cellId,
            statuses: status == null ? null : typeof status === "string" ? [status] : status,
            sinceMs: since_ms ?? null,
            untilMs: until_ms ?? null,
            name: name ?? null,
            labels: labels ?? {},
            before,
            limit: limit ?? DEFAULT_LIST_PAGE
          })
        }))
    ),
    JobKill: validated(JobKillPayload, ({ force, job_id }) =>
      onWire(Effect.gen(function*() {
        const job = yield* Effect.flatMap(parseJobId(job_id), supervisor.get)
        yield* ownedByCaller("kill job", job.id, job.owner_uid)
        return yield* supervisor.kill(job.id, { force })
      }))),
    JobStdin: validated(JobStdinPayload, ({ data, eof, job_id }) =>
      onWire(Effect.gen(function*() {
        const job = yield* Effect.flatMap(parseJobId(job_id), supervisor.get)
        yield* ownedByCaller("write to the stdin of job", job.id, job.owner_uid)
        return yield* supervisor.writeStdin(job.id, data, eof)
      }))),
    JobRemove: validated(JobRemovePayload, ({ job_id }) =>
      onWire(Effect.gen(function*() {
        const job = yield* Effect.flatMap(parseJobId(job_id), supervisor.get)
        yield* ownedByCaller("remove job", job.id, job.owner_uid)
        return yield* housekeeping.remove(job, yield* Caller)
      }))),
    JobPrune: validated(JobPrunePayload, ({ cell_id, older_than_ms }) =>
      onWire(Effect.gen(function*() {
        const caller = yield* Caller
        const cellId = cell_id === null ? null : (yield* cells.resolve(cell_id)).id
        // A `run` caller prunes its own jobs; an admin prunes everyone's.
        return yield* housekeeping.prune({
          finishedBeforeMs: Date.now() - older_than_ms,
          cellId,
          ownerUid: caller.role === "admin" ? null : caller.uid,
          by: "job prune",
          uid: caller.uid
        })
      }))),
    CellShow: validated(CellShowPayload, ({ cell_id }) =>
      onWire(Effect.gen(function*() {
        const cell = yield* cells.resolve(cell_id)
        const counts = yield* repo.cellJobCounts(cell.id)
        return new CellInfo({
          cell,
          running_jobs: counts.running,
          total_jobs: counts.total,
          last_job_started_at_ms: counts.lastStartedAtMs
        })
      }))),
    EventsList: validated(
      EventsListPayload,
      ({ after_id, cell_id, job_id, limit, since_ms }) =>
        onWire(Effect.gen(function*() {
          const { cellId, jobId } = yield* eventFilters(cell_id, job_id)
          const rows = yield* repo.pageEvents({ afterId: after_id, sinceMs: since_ms, cellId, jobId, limit })
          // A page the client can take (a job's argv is in its events): one cut short by size says where to go on.
          const page = cutToPageBytes(rows)
          return new JournalPage({
            events: page.rows.map((row) => new JournalEntry({ ...row })),
            next_id: page.cut || rows.length === limit ? page.rows[page.rows.length - 1]!.id : null
          })
        }))
    ),
    EventsFollow: (raw: unknown) =>
      Stream.unwrap(
        validated(EventsFollowPayload, ({ after_id, cell_id, job_id, since_ms }) =>
          onWire(Effect.map(eventFilters(cell_id, job_id), (filters) =>
            followEvents(repo, feed, { ...filters, sinceMs: since_ms }, after_id))))(raw)
      ),
    DebugFibers: () => snapshot(fiberTree),
    LogsRead: validated(
      LogsReadPayload,
      ({ follow, job_id, max_bytes, offset, stream, wait_ms }) =>
        onWire(
          Effect.flatMap(logsJob(job_id), (jobId) =>
            logs.read({ jobId, stream, offset, maxBytes: max_bytes, follow, waitMs: wait_ms }))
        )
    ),
    LogsOpen: validated(
      LogsOpenPayload,
      ({ job_id, reply_to, stream, token }) =>
        onWire(Effect.scoped(Effect.gen(function*() {
          const caller = yield* Caller
          const jobId = yield* logsJob(job_id)
          const opened = yield* logs.open(jobId, stream)
          if (opened.fd !== null) yield* handOver(reply_to, token, caller, opened.fd)
          // The daemon's own descriptor closes with the scope; the caller's copy stays open.
          return new LogFileInfo({ sent: opened.fd !== null, size: opened.size, complete: opened.complete })
        })))
    ),
    LogsMarks: validated(LogsMarksPayload, ({ after_offset, job_id, limit, stream }) =>
      onWire(Effect.gen(function*() {
        const jobId = yield* logsJob(job_id)
        const found = yield* logs.marks(jobId, stream, after_offset, limit)
        return new LogMarksPage({
          marks: found.marks.map(([offset, at]) => [offset, at] as const),
          started_at_ms: found.startedAtMs,
          more: found.more
        })
      })))
  }
}))
