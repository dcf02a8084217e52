import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StateRepositorySqlite from "../../src/layers/StateRepositorySqlite.js"
import type { CellId, JobId } from "../../src/rpc/Ids.js"
import { Cell, Job, JobCommand, JobSandbox } from "../../src/rpc/Models.js"
import type { StateRepositoryShape } from "../../src/services/StateRepository.js"
import { StateRepository } from "../../src/services/StateRepository.js"

const tempDb = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "planter-state-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => path.join(dir, "planter.db")))

/** Opens the database at `file` (migrating it), runs `use`, and closes it again. */
const withRepo = <A, E>(file: string, use: (repo: StateRepositoryShape) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.provide(Effect.flatMap(StateRepository, use), Layer.fresh(StateRepositorySqlite.layer(file))))

const cell = (id: string, name: string) =>
  new Cell({
    id: id as CellId,
    name,
    env: { A: "1" },
    read_paths: ["/opt/tools"],
    network: "deny",
    dir: `/state/cells/${id}`,
    created_at_ms: 1000
  })

const job = (id: string, cellId: string, startedAt: number) =>
  new Job({
    id: id as JobId,
    cell_id: cellId as CellId,
    command: new JobCommand({ argv: ["sh", "-c", "echo hi"], cwd: "/state/cells/x", env: { B: "2" }, limits: null }),
    status: "running",
    exit_code: null,
    signal: null,
    termination_reason: null,
    pid: 1234,
    pid_start_time: "98765",
    started_at_ms: startedAt,
    finished_at_ms: null,
    sandbox: new JobSandbox({ mode: "permissive", backend: "bubblewrap", network: "allow", fallback_reason: null })
  })

describe("StateRepository on SQLite", () => {
  it.scoped("keeps job names unique among a cell's running jobs, finds and filters by name and label, removes only finished jobs", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          yield* repo.insertCell(cell("cell-a1", "alpha"))
          yield* repo.insertCell(cell("cell-b1", "beta"))
          const named = (id: string, cellId: string, at: number, labels: Record<string, string> = {}) =>
            new Job({ ...job(id, cellId, at), name: "build", labels })
          yield* repo.insertJob(named("job-n1", "cell-a1", 10, { branch: "main" }))
          const twice = yield* Effect.either(repo.insertJob(named("job-n2", "cell-a1", 11)))
          expect(twice._tag === "Left" && twice.left.message).toContain(
            "UNIQUE constraint failed: jobs.cell_id, jobs.name"
          )
          // Another cell may run its own `build`; a finished one frees the name.
          yield* repo.insertJob(named("job-n3", "cell-b1", 12))
          yield* repo.finishJob("job-n1" as JobId, {
            exit_code: 0,
            signal: null,
            termination_reason: "exited",
            finished_at_ms: 20
          }, {
            kind: "job_exited",
            cell_id: "cell-a1" as CellId,
            job_id: "job-n1" as JobId,
            detail: {}
          })
          yield* repo.insertJob(named("job-n4", "cell-a1", 30))
          expect((yield* repo.findJobsByName("build")).map((j) => j.id)).toEqual(["job-n4", "job-n3", "job-n1"])
          expect((yield* repo.getJob("job-n1" as JobId)).pipe(Option.map((j) => j.labels))).toEqual(
            Option.some({ branch: "main" })
          )
          const matching = (query: { cellId?: string; name?: string; labels?: Record<string, string> }) =>
            Effect.map(
              repo.pageJobs({
                cellId: (query.cellId ?? null) as CellId | null,
                statuses: null,
                sinceMs: null,
                untilMs: null,
                name: query.name ?? null,
                labels: query.labels ?? {},
                before: null,
                limit: 50
              }),
              (jobs) => jobs.map((j) => j.id)
            )
          expect(yield* matching({ labels: { branch: "main" } })).toEqual(["job-n1"])
          expect(yield* matching({ labels: { branch: "main", other: "x" } })).toEqual([])
          expect(yield* matching({ name: "build", cellId: "cell-b1" })).toEqual(["job-n3"])
          const removed = { kind: "job_removed" as const, cell_id: null, job_id: null, detail: {} }
          expect(yield* repo.deleteFinishedJob("job-n4" as JobId, removed)).toBe(false)
          expect(yield* repo.deleteFinishedJob("job-n1" as JobId, removed)).toBe(true)
          expect(Option.isNone(yield* repo.getJob("job-n1" as JobId))).toBe(true)
          expect(yield* repo.cellJobCounts("cell-a1" as CellId)).toEqual({ total: 1, running: 1, lastStartedAtMs: 30 })
        }))
    }))

  it.scoped("round-trips cells and jobs through their Schemas", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          yield* repo.insertCell(cell("cell-a1", "alpha"))
          yield* repo.insertJob(job("job-j1", "cell-a1", 10))
          expect(yield* repo.getCell("cell-a1" as CellId)).toEqual(Option.some(cell("cell-a1", "alpha")))
          expect(yield* repo.findCellByName("alpha")).toEqual(Option.some(cell("cell-a1", "alpha")))
          expect(yield* repo.getJob("job-j1" as JobId)).toEqual(Option.some(job("job-j1", "cell-a1", 10)))
          expect(Option.isNone(yield* repo.getJob("job-nope" as JobId))).toBe(true)
        }))
    }))

  it.scoped("keeps everything across a reopen, and applies migrations once", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          yield* repo.insertCell(cell("cell-a1", "alpha"))
          yield* repo.insertJob(job("job-j1", "cell-a1", 10))
        }))
      const [cells, jobs] = yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          return [yield* repo.listCells, yield* repo.listJobs(null)] as const
        }))
      expect(cells.map((c) => c.name)).toEqual(["alpha"])
      expect(jobs.map((j) => j.id)).toEqual(["job-j1"])
    }))

  it.scoped("records only the first finish of a job, and journals it", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          yield* repo.insertCell(cell("cell-a1", "alpha"))
          yield* repo.insertJob(job("job-j1", "cell-a1", 10))
          const first = yield* repo.finishJob(
            "job-j1" as JobId,
            { exit_code: null, signal: "SIGTERM", termination_reason: "terminated_by_user", finished_at_ms: 20 },
            { kind: "job_killed", cell_id: "cell-a1" as CellId, job_id: "job-j1" as JobId, detail: {} }
          )
          const second = yield* repo.finishJob(
            "job-j1" as JobId,
            { exit_code: 0, signal: null, termination_reason: "exited", finished_at_ms: 30 },
            { kind: "job_exited", cell_id: "cell-a1" as CellId, job_id: "job-j1" as JobId, detail: {} }
          )
          const expected = {
            status: "exited",
            termination_reason: "terminated_by_user",
            signal: "SIGTERM",
            finished_at_ms: 20
          }
          expect(Option.getOrThrow(first)).toMatchObject(expected)
          expect(Option.getOrThrow(second)).toMatchObject(expected)
          expect(yield* repo.listUnfinishedJobs).toEqual([])
          const kinds = (yield* repo.listEvents).map((event) => event.kind)
          expect(kinds).toEqual(["cell_created", "job_started", "job_killed"])
        }))
    }))

  it.scoped("lists a cell's jobs in start order and removes cells with a journal entry", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          yield* repo.insertCell(cell("cell-a1", "alpha"))
          yield* repo.insertCell(cell("cell-b1", "beta"))
          yield* repo.insertJob(job("job-late", "cell-a1", 30))
          yield* repo.insertJob(job("job-early", "cell-a1", 10))
          yield* repo.insertJob(job("job-other", "cell-b1", 20))
          expect((yield* repo.listJobs("cell-a1" as CellId)).map((j) => j.id)).toEqual(["job-early", "job-late"])
          yield* repo.deleteCell("cell-b1" as CellId)
          expect((yield* repo.listCells).map((c) => c.id)).toEqual(["cell-a1"])
          expect((yield* repo.listEvents).at(-1)).toMatchObject({ kind: "cell_removed", cell_id: "cell-b1" })
        }))
    }))

  it.scoped("refuses a second cell with the same name", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const error = yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          yield* repo.insertCell(cell("cell-a1", "alpha"))
          return yield* Effect.flip(repo.insertCell(cell("cell-a2", "alpha")))
        }))
      expect(error._tag).toBe("StateError")
    }))

  describe("the import of the prototype's state", () => {
    const imported = (id: string, cellId: string) =>
      new Job({
        ...job(id, cellId, 5),
        status: "exited",
        exit_code: 0,
        termination_reason: "exited",
        pid_start_time: null,
        finished_at_ms: 6
      })
    const batch = (cells: Array<Cell>, jobs: Array<Job>) => ({
      source: "/old/state",
      cells,
      jobs,
      events: [{
        kind: "job_lost" as const,
        cell_id: cells[0]?.id ?? null,
        job_id: jobs[0]?.id ?? null,
        detail: { note: "was running" }
      }],
      files: jobs.map((j) => ({
        path: `jobs/${j.id}.json`,
        record_id: j.id,
        outcome: "imported" as const,
        reason: null,
        fingerprint: null
      })),
      report: { jobs: jobs.length },
      summary: { jobs: jobs.length }
    })

    it.scoped("writes cells, jobs, journal and the files it dealt with together", () =>
      Effect.gen(function*() {
        const file = yield* tempDb
        yield* withRepo(file, (repo) =>
          Effect.gen(function*() {
            yield* repo.importLegacy(
              batch([cell("cell-1", "website")], [imported("job-2", "cell-1"), imported("job-3", "cell-1")])
            )
            expect((yield* repo.listJobs(null)).map((j) => j.id)).toEqual(["job-2", "job-3"])
            expect(yield* repo.getCell("cell-1" as CellId)).toEqual(Option.some(cell("cell-1", "website")))
            const events = yield* repo.listEvents
            expect(events.map((event) => event.kind)).toEqual(["job_lost", "legacy_import"])
            expect(events[1]!.detail).toMatchObject({ source: "/old/state", jobs: 2 })
            expect(yield* repo.legacyHandledFiles("/old/state")).toEqual(
              new Map([
                ["jobs/job-2.json", { outcome: "imported", fingerprint: null }],
                ["jobs/job-3.json", { outcome: "imported", fingerprint: null }]
              ])
            )
            expect((yield* repo.legacyHandledFiles("/elsewhere")).size).toBe(0)
            const taken = yield* repo.takenIds({
              cellIds: ["cell-1", "cell-9"],
              cellNames: ["website", "other"],
              namePrefix: "web",
              jobIds: ["job-3", "job-4"]
            })
            expect(taken).toEqual({
              cells: new Map([["cell-1", "/state/cells/cell-1"]]),
              cellNames: new Set(["website"]),
              jobIds: new Set(["job-3"])
            })
          }))
      }))

    it.scoped("writes nothing at all when one row collides: nothing is overwritten", () =>
      Effect.gen(function*() {
        const file = yield* tempDb
        yield* withRepo(file, (repo) =>
          Effect.gen(function*() {
            yield* repo.insertCell(cell("cell-a1", "alpha"))
            yield* repo.insertJob(job("job-2", "cell-a1", 10))
            const error = yield* Effect.flip(
              repo.importLegacy(
                batch([cell("cell-1", "website")], [imported("job-3", "cell-1"), imported("job-2", "cell-1")])
              )
            )
            expect(error._tag).toBe("StateError")
            expect((yield* repo.listCells).map((c) => c.id)).toEqual(["cell-a1"])
            expect(yield* repo.getJob("job-2" as JobId)).toEqual(Option.some(job("job-2", "cell-a1", 10)))
            expect(Option.isNone(yield* repo.getJob("job-3" as JobId))).toBe(true)
            expect((yield* repo.legacyHandledFiles("/old/state")).size).toBe(0)
            expect((yield* repo.listEvents).map((event) => event.kind)).toEqual(["cell_created", "job_started"])
          }))
      }))

    it.scoped("imports thousands of jobs in chunks", () =>
      Effect.gen(function*() {
        const file = yield* tempDb
        yield* withRepo(file, (repo) =>
          Effect.gen(function*() {
            const jobs = Array.from({ length: 1234 }, (_, i) => imported(`job-${i}`, "cell-1"))
            yield* repo.importLegacy(batch([cell("cell-1", "website")], jobs))
            expect((yield* repo.listJobs(null)).length).toBe(1234)
            expect((yield* repo.legacyHandledFiles("/old/state")).size).toBe(1234)
            const taken = yield* repo.takenIds({
              cellIds: [],
              cellNames: [],
              namePrefix: "x",
              jobIds: jobs.map((j) => j.id)
            })
            expect(taken.jobIds.size).toBe(1234)
          }))
      }))

    it.scoped("keeps a prototype job's limits as recorded", () =>
      Effect.gen(function*() {
        const file = yield* tempDb
        yield* withRepo(file, (repo) =>
          Effect.gen(function*() {
            const limits = { timeout_ms: 3600000, max_rss_bytes: null, max_log_bytes: 1048576 }
            const limited = new Job({
              ...imported("job-2", "cell-1"),
              command: new JobCommand({ ...imported("job-2", "cell-1").command, limits })
            })
            yield* repo.importLegacy(batch([cell("cell-1", "website")], [limited]))
            expect(Option.getOrThrow(yield* repo.getJob("job-2" as JobId)).command.limits).toEqual(limits)
          }))
      }))
  })
})
