import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as StateRepositorySqlite from "../../src/layers/StateRepositorySqlite.js"
import type { CellId, JobId } from "../../src/rpc/Ids.js"
import type { JobStatus } from "../../src/rpc/Models.js"
import { Cell, Job, JobCommand, JobSandbox } from "../../src/rpc/Models.js"
import type { Cursor } from "../../src/services/Paging.js"
import { decodeCursor, encodeCursor, pageOf } from "../../src/services/Paging.js"
import type { JobQuery, StateRepositoryShape } from "../../src/services/StateRepository.js"
import { StateRepository } from "../../src/services/StateRepository.js"

/** better-sqlite3 ships no types here; this is all the test uses of it. */
interface ReadOnlyDb {
  prepare: (sql: string) => { all: () => Array<Record<string, unknown>> }
  close: () => void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new(
  file: string,
  options: { readonly: boolean }
) => ReadOnlyDb

const tempDb = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "planter-paging-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => path.join(dir, "planter.db")))

const withRepo = <A, E>(file: string, use: (repo: StateRepositoryShape) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.provide(Effect.flatMap(StateRepository, use), Layer.fresh(StateRepositorySqlite.layer(file))))

const cell = (id: string, createdAt: number) =>
  new Cell({
    id: id as CellId,
    name: id.slice(5),
    env: {},
    read_paths: [],
    network: "allow",
    dir: `/state/cells/${id}`,
    created_at_ms: createdAt
  })

const job = (n: number, cellId: string, startedAt: number, status: JobStatus) =>
  new Job({
    id: `job-${String(n).padStart(4, "0")}` as JobId,
    cell_id: cellId as CellId,
    command: new JobCommand({ argv: ["true"], cwd: "/", env: {}, limits: null }),
    status,
    exit_code: status === "exited" ? 0 : null,
    signal: null,
    termination_reason: status === "exited" ? "exited" : null,
    pid: status === "exited" ? null : 1000 + n,
    pid_start_time: null,
    started_at_ms: startedAt,
    finished_at_ms: status === "exited" ? startedAt + 5 : null,
    sandbox: new JobSandbox({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null })
  })

/**
 * 230 jobs in two cells; every third shares its start time with the one
 * before (ties are ordered by id), every seventh is running.
 */
const seed = (repo: StateRepositoryShape) =>
  Effect.gen(function*() {
    yield* repo.insertCell(cell("cell-a", 1))
    yield* repo.insertCell(cell("cell-b", 2))
    const jobs: Array<Job> = []
    let at = 1000
    for (let n = 0; n < 230; n++) {
      if (n % 3 !== 0) at += 10
      jobs.push(job(n, n % 2 === 0 ? "cell-a" : "cell-b", at, n % 7 === 0 ? "running" : "exited"))
    }
    for (const each of jobs) yield* repo.insertJob(each)
    return jobs
  })

/** What the daemon does for one JobList: a page of `limit` rows plus one, cut by pageOf, cursor decoded from text. */
const walk = (repo: StateRepositoryShape, filter: Omit<JobQuery, "before" | "limit">, limit: number) =>
  Effect.gen(function*() {
    const pages: Array<ReadonlyArray<Job>> = []
    let after: string | null = null
    do {
      const before: Cursor | null = after === null ? null : yield* decodeCursor(after, "job")
      const rows: ReadonlyArray<Job> = yield* repo.pageJobs({ ...filter, before, limit: limit + 1 })
      const page: { items: ReadonlyArray<Job>; next: string | null } = pageOf(
        rows,
        limit,
        (row) => encodeCursor(row.started_at_ms, row.id)
      )
      pages.push(page.items)
      after = page.next
    } while (after !== null)
    return pages
  })

const newestFirst = (jobs: ReadonlyArray<Job>) =>
  [...jobs].sort((a, b) => b.started_at_ms - a.started_at_ms || (a.id < b.id ? 1 : -1)).map((each) => each.id)

const noFilter = { cellId: null, statuses: null, sinceMs: null, untilMs: null, name: null, labels: {} } as const

describe("paged job and cell lists", () => {
  it.scoped("pages through every job newest first, each exactly once, ties ordered by id", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          const jobs = yield* seed(repo)
          const pages = yield* walk(repo, noFilter, 50)
          expect(pages.map((page) => page.length)).toEqual([50, 50, 50, 50, 30])
          expect(pages.flat().map((each) => each.id)).toEqual(newestFirst(jobs))
          // A limit that divides the total leaves no empty page at the end.
          expect((yield* walk(repo, noFilter, 46)).map((page) => page.length)).toEqual([46, 46, 46, 46, 46])
        }))
    }))

  it.scoped("filters by cell, status and start time, together and while paging", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          const jobs = yield* seed(repo)
          const cellB = (yield* walk(repo, { ...noFilter, cellId: "cell-b" as CellId }, 20)).flat()
          expect(cellB.map((each) => each.id)).toEqual(newestFirst(jobs.filter((each) => each.cell_id === "cell-b")))

          const running = (yield* walk(repo, { ...noFilter, statuses: ["running", "starting"] }, 7)).flat()
          expect(running.map((each) => each.id)).toEqual(newestFirst(jobs.filter((each) => each.status === "running")))

          const window = {
            ...noFilter,
            cellId: "cell-a" as CellId,
            statuses: ["exited" as const],
            sinceMs: 1500,
            untilMs: 2000
          }
          const windowed = (yield* walk(repo, window, 9)).flat()
          const expected = jobs.filter((each) =>
            each.cell_id === "cell-a" && each.status === "exited" && each.started_at_ms >= 1500 &&
            each.started_at_ms < 2000
          )
          expect(expected.length).toBeGreaterThan(9)
          expect(windowed.map((each) => each.id)).toEqual(newestFirst(expected))
        }))
    }))

  it.scoped("pages cells oldest first", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) =>
        Effect.gen(function*() {
          for (let n = 0; n < 5; n++) yield* repo.insertCell(cell(`cell-c${n}`, n < 3 ? 7 : 8))
          const first = pageOf(
            yield* repo.pageCells({ after: null, limit: 4 }),
            3,
            (row) => encodeCursor(row.created_at_ms, row.id)
          )
          expect(first.items.map((row) => row.id)).toEqual(["cell-c0", "cell-c1", "cell-c2"])
          const after = yield* decodeCursor(first.next!, "cell")
          expect((yield* repo.pageCells({ after, limit: 4 })).map((row) => row.id)).toEqual(["cell-c3", "cell-c4"])
        }))
    }))

  it.effect("refuses a cursor that is not one it made, naming what to pass", () =>
    Effect.gen(function*() {
      for (const bad of ["", "12", "x.job-a", "12.cell-a", "12.job-a;DROP", "99999999999999999.job-a", "-1.job-a"]) {
        const exit = yield* Effect.exit(decodeCursor(bad, "job"))
        expect(Exit.isFailure(exit), bad).toBe(true)
        if (Exit.isFailure(exit)) expect(String(exit.cause)).toContain("pass the `next` of the previous job page")
      }
      expect(yield* decodeCursor(encodeCursor(1234, "job-abc"), "job")).toEqual({ atMs: 1234, id: "job-abc" })
    }))

  it.scoped("answers every page from an index: no table scan and no sort, whatever the filter", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* withRepo(file, (repo) => Effect.asVoid(seed(repo)))
      const db = new Database(file, { readonly: true })
      try {
        const plan = (where: string) =>
          db.prepare(`EXPLAIN QUERY PLAN SELECT * FROM jobs ${where} ORDER BY started_at_ms DESC, id DESC LIMIT 51`)
            .all()
            .map((row) => String(row.detail)).join("; ")
        for (
          const where of [
            "",
            "WHERE (started_at_ms, id) < (2000, 'job-0100')",
            "WHERE cell_id = 'cell-a' AND (started_at_ms, id) < (2000, 'job-0100')",
            "WHERE status IN ('running') AND started_at_ms >= 1500"
          ]
        ) {
          const detail = plan(where)
          expect(detail, where).toMatch(/USING (COVERING )?INDEX jobs_by_/)
          expect(detail, where).not.toMatch(/TEMP B-TREE/)
        }
      } finally {
        db.close()
      }
    }))
})
