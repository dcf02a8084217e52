import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Deferred, Effect, Either, Fiber, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { runMigrations } from "../../src/layers/Migrations.js"
import * as SqliteDirect from "../../src/layers/SqliteDirect.js"
import * as StateRepositorySqlite from "../../src/layers/StateRepositorySqlite.js"
import type { CellId, JobId } from "../../src/rpc/Ids.js"
import { Cell, Job, JobCommand, JobSandbox } from "../../src/rpc/Models.js"
import { StateRepository } from "../../src/services/StateRepository.js"

const tempDb = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "planter-direct-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => path.join(dir, "planter.db")))

/** The repository as the daemon builds it (direct connection included), with its SqlClient exposed to the test. */
const repoAndSql = (file: string) =>
  Layer.scoped(
    StateRepository,
    Effect.zipRight(runMigrations, Effect.flatMap(SqliteDirect.make(file), StateRepositorySqlite.makeWith))
  ).pipe(Layer.provide(NodeContext.layer), Layer.provideMerge(SqliteClient.layer({ filename: file })))

const cell = new Cell({
  id: "cell-d1" as CellId,
  name: "direct",
  env: {},
  read_paths: [],
  network: "allow",
  dir: "/state/cells/cell-d1",
  created_at_ms: 1000
})

const starting = (id: string) =>
  new Job({
    id: id as JobId,
    cell_id: cell.id,
    command: new JobCommand({ argv: ["true"], cwd: "/state/cells/cell-d1", env: { A: "1" }, limits: null }),
    status: "starting",
    exit_code: null,
    signal: null,
    termination_reason: null,
    pid: null,
    pid_start_time: null,
    started_at_ms: 2000,
    finished_at_ms: null,
    sandbox: new JobSandbox({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null }),
    labels: { k: "v" }
  })

const finish = {
  exit_code: 0,
  signal: null,
  termination_reason: "exited" as const,
  finished_at_ms: 3000,
  peak_rss_bytes: null,
  cpu_ms: null,
  limit_detail: null
}

describe("SqliteDirect: a job's statements on a second, synchronous connection", () => {
  it.scoped("records a job's start, process, audit row and end that @effect/sql reads back the same", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* Effect.gen(function*() {
        const repo = yield* StateRepository
        yield* repo.insertCell(cell)
        expect(Option.getOrThrow(yield* repo.getCell(cell.id))).toEqual(cell)
        const job = starting("job-d1")
        yield* repo.insertJob(job)
        const sandbox = new JobSandbox({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null })
        yield* repo.markJobRunning(job.id, { pid: 4242, pid_start_time: "777", sandbox })
        yield* repo.appendEvent({ kind: "request", cell_id: cell.id, job_id: job.id, uid: 0, pid: 1, detail: {} })
        const running = Option.getOrThrow(yield* repo.getJob(job.id))
        expect(running).toMatchObject({ status: "running", pid: 4242, pid_start_time: "777", labels: { k: "v" } })
        const ended = new Job({ ...running, ...finish, status: "exited" }, true)
        // The first finish answers the record it wrote; a second one answers the stored first.
        expect(
          yield* repo.finishJob(
            job.id,
            finish,
            { kind: "job_exited", cell_id: cell.id, job_id: job.id, detail: {} },
            ended
          )
        )
          .toEqual(Option.some(ended))
        const again = yield* repo.finishJob(
          job.id,
          { ...finish, exit_code: 9, termination_reason: "forced_kill" },
          { kind: "job_killed", cell_id: cell.id, job_id: job.id, detail: {} },
          new Job({ ...ended, exit_code: 9 }, true)
        )
        expect(Option.getOrThrow(again)).toMatchObject({ exit_code: 0, termination_reason: "exited" })
        expect(Option.getOrThrow(yield* repo.getJob(job.id))).toEqual(ended)
        const kinds = (yield* repo.listEvents).map((event) => event.kind)
        expect(kinds).toEqual(["cell_created", "job_started", "request", "job_exited"])
        // A duplicate id is refused with SQLite's words, as through @effect/sql.
        const duplicate = yield* Effect.either(repo.insertJob(starting("job-d1")))
        expect(duplicate._tag === "Left" && duplicate.left.message).toContain("UNIQUE constraint failed: jobs.id")
      }).pipe(Effect.provide(Layer.fresh(repoAndSql(file))))
    }))

  it.scopedLive("waits behind a transaction the other connection holds open, instead of failing or blocking the thread", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* Effect.gen(function*() {
        const repo = yield* StateRepository
        const sql = yield* SqlClient.SqlClient
        yield* repo.insertCell(cell)
        const inside = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const holder = yield* sql.withTransaction(
          Effect.zipRight(
            sql`UPDATE cells SET name = 'renamed' WHERE id = ${cell.id}`,
            Effect.zipRight(Deferred.succeed(inside, undefined), Deferred.await(gate))
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(inside)
        const insert = yield* Effect.fork(repo.insertJob(starting("job-d2")))
        yield* Effect.sleep("50 millis")
        expect(Option.isNone(yield* Fiber.poll(insert))).toBe(true)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        yield* Fiber.join(insert)
        expect(Option.getOrThrow(yield* repo.getJob("job-d2" as JobId)).status).toBe("starting")
        expect(Option.getOrThrow(yield* repo.getCell(cell.id)).name).toBe("renamed")
      }).pipe(Effect.provide(Layer.fresh(repoAndSql(file))))
    }))

  it.scoped("answers Unavailable while another connection holds the write lock, and runs once it is released", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* Effect.scoped(
        Effect.provide(Effect.flatMap(StateRepository, (repo) => repo.insertCell(cell)), repoAndSql(file))
      )
      const other = new Database(file)
      yield* Effect.addFinalizer(() => Effect.sync(() => other.close()))
      const direct = yield* SqliteDirect.make(file)
      const count = (prepare: SqliteDirect.Prepare) =>
        (prepare("SELECT COUNT(*) AS n FROM cells").get() as { readonly n: number }).n
      other.prepare("BEGIN IMMEDIATE").run()
      expect(yield* direct.transaction(count)).toEqual({ _tag: "Unavailable" })
      other.prepare("COMMIT").run()
      expect(yield* direct.transaction(count)).toEqual({ _tag: "Done", value: 1 })
      const refused = yield* Effect.either(direct.run((prepare) => prepare("SELECT * FROM no_such_table").all()))
      expect(refused._tag === "Left" && String(refused.left.cause)).toContain("no such table")
    }))

  it.scoped("a failure that leaves the connection inside a transaction does not refuse every later call", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* Effect.scoped(
        Effect.provide(Effect.flatMap(StateRepository, (repo) => repo.insertCell(cell)), repoAndSql(file))
      )
      const direct = yield* SqliteDirect.make(file)
      const count = (prepare: SqliteDirect.Prepare) =>
        (prepare("SELECT COUNT(*) AS n FROM cells").get() as { readonly n: number }).n
      // What a failed COMMIT whose ROLLBACK failed too leaves: a transaction open on the connection, holding
      // the write lock (a later `.immediate` call would run as a savepoint inside it, never committed).
      const stuck = yield* Effect.either(direct.run((prepare) => {
        prepare("BEGIN IMMEDIATE").run()
        throw new Error("disk I/O error")
      }))
      expect(stuck._tag).toBe("Left")
      expect(yield* direct.transaction(count)).toEqual({ _tag: "Done", value: 1 })
      expect(yield* Effect.either(direct.batched(count))).toStrictEqual(
        Either.right({ _tag: "Done", value: 1 })
      )
      // The write lock went with the rollback: another connection can write.
      const other = new Database(file)
      yield* Effect.addFinalizer(() => Effect.sync(() => other.close()))
      other.pragma("busy_timeout = 0")
      other.prepare("BEGIN IMMEDIATE").run()
      other.prepare("ROLLBACK").run()
    }))

  it.scoped("opens only the file the daemon has open: one moved away or replaced is never created or written", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* Effect.scoped(
        Effect.provide(Effect.flatMap(StateRepository, (repo) => repo.insertCell(cell)), repoAndSql(file))
      )
      const count = (prepare: SqliteDirect.Prepare) =>
        (prepare("SELECT COUNT(*) AS n FROM cells").get() as { readonly n: number }).n
      // Moved away before the first job: no new empty database appears at the path.
      const moved = yield* SqliteDirect.make(file)
      fs.renameSync(file, `${file}.moved`)
      expect(yield* moved.run(count)).toEqual({ _tag: "Unavailable" })
      expect(fs.existsSync(file)).toBe(false)
      // Another database put in its place: not the one every read sees, so not written either, for good.
      fs.renameSync(`${file}.moved`, file)
      const replaced = yield* SqliteDirect.make(file)
      fs.renameSync(file, `${file}.old`)
      const stranger = new Database(`${file}.new`)
      stranger.prepare("CREATE TABLE cells (id TEXT)").run()
      stranger.close()
      fs.renameSync(`${file}.new`, file)
      expect(yield* replaced.run(count)).toEqual({ _tag: "Unavailable" })
      fs.renameSync(`${file}.old`, file)
      expect(yield* replaced.run(count)).toEqual({ _tag: "Unavailable" })
    }))

  it.scoped("answers Unavailable once the repository has closed, without opening the file again", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* Effect.scoped(
        Effect.provide(Effect.flatMap(StateRepository, (repo) => repo.insertCell(cell)), repoAndSql(file))
      )
      const direct = yield* Effect.scoped(SqliteDirect.make(file))
      const fds = () =>
        fs.readdirSync("/proc/self/fd").filter((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`) === file
          } catch {
            return false
          }
        }).length
      const before = fds()
      expect(yield* direct.run((prepare) => prepare("SELECT 1").get())).toEqual({ _tag: "Unavailable" })
      expect(fds()).toBe(before)
    }))
})
