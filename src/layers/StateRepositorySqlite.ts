import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Array as Arr, Effect, Layer, Option, ParseResult, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { CellId, JobId } from "../rpc/Ids.js"
import {
  Cell,
  Env,
  Job,
  JobCommand,
  JobSandbox,
  JobStatus,
  LimitDetail,
  NetworkPolicy,
  ResourceLimits,
  TerminationReason
} from "../rpc/Models.js"
import { hotSpan } from "../services/HotSpan.js"
import { JournalFeed } from "../services/JournalFeed.js"
import type { JobFinish, JobProcess, JournalEvent, LegacyImportBatch } from "../services/StateRepository.js"
import { StateError, StateRepository, StoredEvent } from "../services/StateRepository.js"
import { runMigrations } from "./Migrations.js"
import * as SqliteDirect from "./SqliteDirect.js"

/** Rows as SQLite stores them; JSON columns decode through the same Schemas the protocol uses. */
const CellRow = Schema.Struct({
  id: CellId,
  name: Schema.String,
  env_json: Schema.parseJson(Env),
  read_paths_json: Schema.parseJson(Schema.Array(Schema.String)),
  network: NetworkPolicy,
  dir: Schema.String,
  created_at_ms: Schema.Number,
  owner_uid: Schema.NullOr(Schema.Number),
  limits_json: Schema.NullOr(Schema.parseJson(ResourceLimits))
})

/**
 * Rows become instances without the class constructor's validation: the row schema has just checked every field
 * with the same schemas, and the constructor would check them again (deriving the class's type AST and a parser
 * each time, ~0.1 ms a row).
 */
const CellFromRow = Schema.transform(CellRow, Schema.typeSchema(Cell), {
  strict: true,
  decode: (row) =>
    new Cell({
      id: row.id,
      name: row.name,
      env: row.env_json,
      read_paths: row.read_paths_json,
      network: row.network,
      dir: row.dir,
      created_at_ms: row.created_at_ms,
      owner_uid: row.owner_uid,
      limits: row.limits_json
    }, true),
  encode: (cell) => ({
    id: cell.id,
    name: cell.name,
    env_json: cell.env,
    read_paths_json: cell.read_paths,
    network: cell.network,
    dir: cell.dir,
    created_at_ms: cell.created_at_ms,
    owner_uid: cell.owner_uid,
    limits_json: cell.limits
  })
})

const JobRow = Schema.Struct({
  id: JobId,
  cell_id: CellId,
  command_json: Schema.parseJson(JobCommand),
  status: JobStatus,
  exit_code: Schema.NullOr(Schema.Number),
  signal: Schema.NullOr(Schema.String),
  termination_reason: Schema.NullOr(TerminationReason),
  pid: Schema.NullOr(Schema.Number),
  pid_start_time: Schema.NullOr(Schema.String),
  started_at_ms: Schema.Number,
  finished_at_ms: Schema.NullOr(Schema.Number),
  sandbox_json: Schema.parseJson(JobSandbox),
  owner_uid: Schema.NullOr(Schema.Number),
  peak_rss_bytes: Schema.NullOr(Schema.Number),
  cpu_ms: Schema.NullOr(Schema.Number),
  limit_detail_json: Schema.NullOr(Schema.parseJson(LimitDetail)),
  name: Schema.NullOr(Schema.String),
  labels_json: Schema.NullOr(Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.String })))
})

/** Live usage is never stored: it is the monitor's, in memory, while the job runs. Unchecked, as CellFromRow. */
const JobFromRow = Schema.transform(JobRow, Schema.typeSchema(Job), {
  strict: true,
  decode: ({ command_json, labels_json, limit_detail_json, sandbox_json, ...rest }) =>
    new Job({
      ...rest,
      command: command_json,
      sandbox: sandbox_json,
      limit_detail: limit_detail_json,
      labels: labels_json ?? {},
      usage: null
    }, true),
  encode: ({ command, labels, limit_detail, sandbox, usage: _usage, ...rest }) => ({
    ...rest,
    command_json: command,
    sandbox_json: sandbox,
    limit_detail_json: limit_detail,
    labels_json: Object.keys(labels).length === 0 ? null : labels
  })
})

/** SQLite's own words (e.g. "database or disk is full"), which SqlError keeps as its cause. */
const sqliteReason = (cause: SqlError | ParseResult.ParseError) => {
  const inner = (cause as { cause?: unknown }).cause as { code?: unknown; message?: unknown } | undefined
  if (inner?.code === "SQLITE_FULL") {
    return "no space left on device for the database: free some space under the state dir"
  }
  if (inner?.code === "SQLITE_READONLY") {
    return "the database is read-only: check the state dir's file system and permissions"
  }
  return typeof inner?.message === "string" ? `${cause.message}: ${inner.message}` : cause.message
}

/**
 * Rows per multi-row statement: well under SQLite's limit on bound
 * parameters (32766) for the widest table, and large enough that a bulk
 * import is a few hundred statements, not one per row.
 */
const CHUNK = 500

const LegacyFileRow = Schema.Struct({
  path: Schema.String,
  outcome: Schema.Literal("imported", "skipped"),
  fingerprint: Schema.NullOr(Schema.String)
})

const stateError = (message: string) => (cause: SqlError | ParseResult.ParseError) =>
  new StateError({ message: `${message}: ${sqliteReason(cause)}`, cause })

/**
 * Every failure of a repository call becomes a StateError saying what could
 * not be done, defects included: @effect/sql dies when a ROLLBACK fails, as
 * it does after SQLite has already rolled back on a full disk, and a
 * storage failure must never crash a request or hang its caller.
 */
const storageFailure = (message: string) => <A, R>(effect: Effect.Effect<A, SqlError | ParseResult.ParseError, R>) =>
  effect.pipe(
    Effect.mapError(stateError(message)),
    Effect.catchAllDefect((defect) =>
      Effect.fail(
        new StateError({
          message: `${message}: ${defect instanceof Error ? sqliteReason(defect as SqlError) : String(defect)}`,
          cause: defect
        })
      )
    )
  )

/**
 * The repository over the provided SqlClient; with `direct` (a second connection to the same file,
 * SqliteDirect), the statements of a job's start and end go through it first.
 */
export const makeWith = (direct: SqliteDirect.SqliteDirect | null) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`PRAGMA foreign_keys = ON`
    // WAL with NORMAL sync survives a daemon crash without losing a commit;
    // only a power loss could drop the last transactions.
    yield* sql`PRAGMA synchronous = NORMAL`
    yield* sql`PRAGMA busy_timeout = 5000`

    const decodeCells = Schema.decodeUnknown(Schema.Array(CellFromRow))
    const decodeJobs = Schema.decodeUnknown(Schema.Array(JobFromRow))
    const encodeCell = Schema.encode(CellFromRow)
    const encodeJob = Schema.encode(JobFromRow)
    const encodeSandbox = Schema.encode(JobSandbox)
    const decodeEvents = Schema.decodeUnknown(Schema.Array(StoredEvent))

    const eventRow = (event: JournalEvent, atMs: number) => ({
      at_ms: atMs,
      kind: event.kind,
      cell_id: event.cell_id,
      job_id: event.job_id,
      uid: event.uid ?? null,
      pid: event.pid ?? null,
      detail_json: JSON.stringify(event.detail)
    })

    // Followers of the journal (EventsFollow) are woken by each insert; without a feed (tools, tests) nobody is.
    const feed = yield* Effect.serviceOption(JournalFeed)
    const wake = Option.match(feed, { onNone: () => Effect.void, onSome: (f) => f.wake })

    const journal = (event: JournalEvent) =>
      sql`INSERT INTO events ${sql.insert(eventRow(event, Date.now()))}`.pipe(Effect.zipLeft(wake))

    /** Runs `each` over `items` in chunks of CHUNK, one after the other. */
    const inChunks = <A, B, E>(items: ReadonlyArray<A>, each: (chunk: Array<A>) => Effect.Effect<B, E>) =>
      Effect.forEach(Arr.chunksOf(items, CHUNK), (chunk) => each([...chunk]), { discard: true })

    /** The values among `values` found by `query` (run on chunks of them): lookups bounded by their input. */
    const lookup = <R>(
      values: ReadonlyArray<string>,
      query: (chunk: Array<string>) => Effect.Effect<ReadonlyArray<R>, SqlError>
    ) =>
      Effect.map(
        Effect.forEach(Arr.chunksOf([...new Set(values)], CHUNK), (chunk) => query([...chunk])),
        (results) => results.flat()
      )

    const selectJob = (id: JobId) =>
      sql`SELECT * FROM jobs WHERE id = ${id}`.pipe(
        Effect.flatMap(decodeJobs),
        Effect.map((jobs) => Option.fromNullable(jobs[0]))
      )

    /**
     * The statements of a job's start and end through the direct connection (SqliteDirect): `attempt`'s answer
     * then `after` (e.g. waking the journal's followers), or `viaSql` (the same statements through @effect/sql)
     * when the direct connection cannot take them now or there is none.
     */
    const preferDirect = <A, B, E, R>(
      attempt: (direct: SqliteDirect.SqliteDirect) => Effect.Effect<SqliteDirect.DirectOutcome<A>, SqlError>,
      done: (value: A) => Effect.Effect<B, E | SqlError | ParseResult.ParseError, R>,
      viaSql: Effect.Effect<B, E | SqlError | ParseResult.ParseError, R>
    ): Effect.Effect<B, E | SqlError | ParseResult.ParseError, R> =>
      direct === null
        ? viaSql
        : Effect.flatMap(attempt(direct), (outcome) => outcome._tag === "Done" ? done(outcome.value) : viaSql)

    /** Binds a row's values in its keys' order (`INSERT … (keys) VALUES (?…)`); SQLite has no undefined. */
    const insertInto = (prepare: SqliteDirect.Prepare, table: string, row: Record<string, unknown>) => {
      const keys = Object.keys(row)
      prepare(`INSERT INTO ${table} (${keys.join(", ")}) VALUES (${keys.map(() => "?").join(", ")})`)
        .run(...keys.map((key) => row[key] ?? null))
    }

    const SELECT_JOB = "SELECT * FROM jobs WHERE id = ?"
    // One text per hot statement, run on either connection (`?` parameters in this order).
    const MARK_JOB_RUNNING =
      "UPDATE jobs SET status = 'running', pid = ?, pid_start_time = ?, sandbox_json = ? WHERE id = ? AND status = 'starting'"
    // Only the first finish counts: a kill racing the exit watcher must not overwrite it.
    const FINISH_JOB = `UPDATE jobs SET status = 'exited', exit_code = ?, signal = ?, termination_reason = ?,
      finished_at_ms = ?, peak_rss_bytes = ?, cpu_ms = ?, limit_detail_json = ?
      WHERE id = ? AND status IN ('starting', 'running') RETURNING id`
    const firstJob = (row: unknown) =>
      Effect.map(decodeJobs(row === undefined ? [] : [row]), (jobs) => Option.fromNullable(jobs[0]))

    return StateRepository.of({
      insertCell: Effect.fn("StateRepository.insertCell")(function*(cell) {
        const row = yield* encodeCell(cell)
        yield* sql.withTransaction(
          Effect.zipRight(
            sql`INSERT INTO cells ${sql.insert(row)}`,
            journal({
              kind: "cell_created",
              cell_id: cell.id,
              job_id: null,
              detail: { name: cell.name },
              uid: cell.owner_uid
            })
          )
        )
      }, storageFailure("cannot record the cell")),

      findCellByName: Effect.fn("StateRepository.findCellByName")(function*(name) {
        const cells = yield* sql`SELECT * FROM cells WHERE name = ${name} AND removing_at_ms IS NULL`.pipe(
          Effect.flatMap(decodeCells)
        )
        return Option.fromNullable(cells[0])
      }, storageFailure("cannot read cells")),

      getCell: (id) =>
        preferDirect(
          (direct) =>
            direct.run((prepare) => prepare("SELECT * FROM cells WHERE id = ? AND removing_at_ms IS NULL").get(id)),
          (row) => decodeCells(row === undefined ? [] : [row]),
          sql`SELECT * FROM cells WHERE id = ${id} AND removing_at_ms IS NULL`.pipe(Effect.flatMap(decodeCells))
        ).pipe(
          Effect.map((cells) => Option.fromNullable(cells[0])),
          storageFailure("cannot read cells"),
          hotSpan("StateRepository.getCell")
        ),

      listCells: sql`SELECT * FROM cells WHERE removing_at_ms IS NULL ORDER BY created_at_ms, id`.pipe(
        Effect.flatMap(decodeCells),
        storageFailure("cannot read cells"),
        Effect.withSpan("StateRepository.listCells")
      ),

      pageCells: (query) =>
        sql`SELECT * FROM cells WHERE ${
          sql.and([
            sql`removing_at_ms IS NULL`,
            ...(query.after === null ? [] : [sql`(created_at_ms, id) > (${query.after.atMs}, ${query.after.id})`])
          ])
        } ORDER BY created_at_ms, id LIMIT ${query.limit}`.pipe(
          Effect.flatMap(decodeCells),
          storageFailure("cannot read cells"),
          Effect.withSpan("StateRepository.pageCells")
        ),

      markCellRemoving: Effect.fn("StateRepository.markCellRemoving")(function*(id) {
        yield* sql.withTransaction(
          Effect.zipRight(
            sql`UPDATE cells SET removing_at_ms = ${Date.now()} WHERE id = ${id} AND removing_at_ms IS NULL`,
            journal({ kind: "cell_removing", cell_id: id, job_id: null, detail: {} })
          )
        )
      }, storageFailure("cannot record the cell's removal")),

      listRemovingCells: sql`SELECT * FROM cells WHERE removing_at_ms IS NOT NULL ORDER BY removing_at_ms, id`.pipe(
        Effect.flatMap(decodeCells),
        storageFailure("cannot read cells"),
        Effect.withSpan("StateRepository.listRemovingCells")
      ),

      deleteCell: Effect.fn("StateRepository.deleteCell")(function*(id) {
        yield* sql.withTransaction(
          Effect.zipRight(
            sql`DELETE FROM cells WHERE id = ${id}`,
            journal({ kind: "cell_removed", cell_id: id, job_id: null, detail: {} })
          )
        )
      }, storageFailure("cannot remove the cell")),

      insertJob: (job) =>
        encodeJob(job).pipe(
          Effect.flatMap((row) => {
            const started: JournalEvent = {
              kind: "job_started",
              cell_id: job.cell_id,
              job_id: job.id,
              detail: { argv: job.command.argv },
              uid: job.owner_uid
            }
            return preferDirect(
              (direct) =>
                direct.transaction((prepare) => {
                  insertInto(prepare, "jobs", row)
                  insertInto(prepare, "events", eventRow(started, Date.now()))
                }),
              () => wake,
              sql.withTransaction(Effect.zipRight(sql`INSERT INTO jobs ${sql.insert(row)}`, journal(started)))
            )
          }),
          Effect.asVoid,
          storageFailure("cannot record the job"),
          hotSpan("StateRepository.insertJob")
        ),

      markJobRunning: (id, running: JobProcess) =>
        encodeSandbox(running.sandbox).pipe(
          Effect.flatMap((sandbox) => {
            const params = [running.pid, running.pid_start_time, JSON.stringify(sandbox), id]
            return preferDirect(
              (direct) => direct.run((prepare) => prepare(MARK_JOB_RUNNING).run(...params)),
              () => Effect.void,
              sql.unsafe(MARK_JOB_RUNNING, params)
            )
          }),
          Effect.asVoid,
          storageFailure("cannot record the job's process"),
          hotSpan("StateRepository.markJobRunning")
        ),

      deleteStartingJob: Effect.fn("StateRepository.deleteStartingJob")(function*(id, event) {
        yield* sql.withTransaction(
          Effect.zipRight(sql`DELETE FROM jobs WHERE id = ${id} AND status = 'starting'`, journal(event))
        )
      }, storageFailure("cannot remove the job that did not start")),

      finishJob: (id, finish: JobFinish, event, ended?: Job) => {
        const params = [
          finish.exit_code,
          finish.signal,
          finish.termination_reason,
          finish.finished_at_ms,
          finish.peak_rss_bytes ?? null,
          finish.cpu_ms ?? null,
          finish.limit_detail ? JSON.stringify(finish.limit_detail) : null,
          id
        ]
        return preferDirect(
          // Ends let go together (EndDeferral) share one commit.
          (direct) =>
            direct.batched((prepare) => {
              const updated = prepare(FINISH_JOB).all(...params).length > 0
              if (updated) insertInto(prepare, "events", eventRow(event, Date.now()))
              return { updated, row: updated && ended !== undefined ? undefined : prepare(SELECT_JOB).get(id) }
            }),
          ({ row, updated }) =>
            Effect.zipRight(
              updated ? wake : Effect.void,
              updated && ended !== undefined ? Effect.succeed(Option.some(ended)) : firstJob(row)
            ),
          sql.withTransaction(
            Effect.gen(function*() {
              const updated = yield* sql.unsafe(FINISH_JOB, params)
              if (updated.length === 0) return yield* selectJob(id)
              yield* journal(event)
              return ended === undefined ? yield* selectJob(id) : Option.some(ended)
            })
          )
        ).pipe(storageFailure("cannot record the job's end"), hotSpan("StateRepository.finishJob"))
      },

      getJob: (id) => selectJob(id).pipe(storageFailure("cannot read jobs"), Effect.withSpan("StateRepository.getJob")),

      listJobs: (cellId) =>
        (cellId === null
          ? sql`SELECT * FROM jobs ORDER BY started_at_ms, id`
          : sql`SELECT * FROM jobs WHERE cell_id = ${cellId} ORDER BY started_at_ms, id`).pipe(
            Effect.flatMap(decodeJobs),
            storageFailure("cannot read jobs"),
            Effect.withSpan("StateRepository.listJobs")
          ),

      findJobsByName: (name) =>
        sql`SELECT * FROM jobs WHERE name = ${name}
          ORDER BY status IN ('starting', 'running') DESC, started_at_ms DESC, id DESC LIMIT 50`.pipe(
          Effect.flatMap(decodeJobs),
          storageFailure("cannot read jobs"),
          Effect.withSpan("StateRepository.findJobsByName")
        ),

      deleteFinishedJob: Effect.fn("StateRepository.deleteFinishedJob")(function*(id, event) {
        return yield* sql.withTransaction(
          Effect.gen(function*() {
            const deleted = yield* sql`DELETE FROM jobs WHERE id = ${id} AND status = 'exited' RETURNING id`
            if (deleted.length > 0) yield* journal(event)
            return deleted.length > 0
          })
        )
      }, storageFailure("cannot remove the job")),

      finishedJobsBefore: (query) =>
        sql`SELECT * FROM jobs WHERE ${
          sql.and([
            sql`status = 'exited'`,
            sql`finished_at_ms <= ${query.finishedBeforeMs}`,
            ...(query.cellId === null ? [] : [sql`cell_id = ${query.cellId}`]),
            ...(query.ownerUid === null ? [] : [sql`owner_uid = ${query.ownerUid}`])
          ])
        } ORDER BY finished_at_ms, id LIMIT ${query.limit}`.pipe(
          Effect.flatMap(decodeJobs),
          storageFailure("cannot read jobs"),
          Effect.withSpan("StateRepository.finishedJobsBefore")
        ),

      cellJobCounts: Effect.fn("StateRepository.cellJobCounts")(function*(cellId) {
        const [row] = yield* sql<{ total: number; running: number | null; last: number | null }>`SELECT
          COUNT(*) AS total,
          SUM(status IN ('starting', 'running')) AS running,
          MAX(started_at_ms) AS last
        FROM jobs WHERE cell_id = ${cellId}`
        return { total: row?.total ?? 0, running: row?.running ?? 0, lastStartedAtMs: row?.last ?? null }
      }, storageFailure("cannot read jobs")),

      pageJobs: (query) =>
        sql`SELECT * FROM jobs WHERE ${
          sql.and([
            ...(query.cellId === null ? [] : [sql`cell_id = ${query.cellId}`]),
            ...(query.statuses === null ? [] : [sql.in("status", [...query.statuses])]),
            ...(query.sinceMs === null ? [] : [sql`started_at_ms >= ${query.sinceMs}`]),
            ...(query.untilMs === null ? [] : [sql`started_at_ms < ${query.untilMs}`]),
            ...(query.name === null ? [] : [sql`name = ${query.name}`]),
            ...Object.entries(query.labels).map(([key, value]) =>
              sql`EXISTS (SELECT 1 FROM json_each(jobs.labels_json) WHERE json_each.key = ${key} AND json_each.value = ${value})`
            ),
            ...(query.before === null ? [] : [sql`(started_at_ms, id) < (${query.before.atMs}, ${query.before.id})`])
          ])
        } ORDER BY started_at_ms DESC, id DESC LIMIT ${query.limit}`.pipe(
          Effect.flatMap(decodeJobs),
          storageFailure("cannot read jobs"),
          Effect.withSpan("StateRepository.pageJobs")
        ),

      listUnfinishedJobs: sql`SELECT * FROM jobs WHERE status IN ('starting', 'running') ORDER BY started_at_ms, id`
        .pipe(
          Effect.flatMap(decodeJobs),
          storageFailure("cannot read jobs"),
          Effect.withSpan("StateRepository.listUnfinishedJobs")
        ),

      appendEvent: (event) =>
        preferDirect(
          (direct) => direct.run((prepare) => insertInto(prepare, "events", eventRow(event, Date.now()))),
          () => wake,
          journal(event)
        ).pipe(
          Effect.asVoid,
          storageFailure("cannot append to the events journal"),
          hotSpan("StateRepository.appendEvent")
        ),

      listEvents: sql`SELECT id, at_ms, kind, cell_id, job_id, uid, pid, detail_json AS detail FROM events ORDER BY id`
        .pipe(
          Effect.flatMap(decodeEvents),
          storageFailure("cannot read the events journal"),
          Effect.withSpan("StateRepository.listEvents")
        ),

      pageEvents: (query) =>
        sql`SELECT id, at_ms, kind, cell_id, job_id, uid, pid, detail_json AS detail FROM events WHERE ${
          sql.and([
            sql`id > ${query.afterId ?? 0}`,
            ...(query.sinceMs === null ? [] : [sql`at_ms >= ${query.sinceMs}`]),
            ...(query.jobId === null ? [] : [sql`job_id = ${query.jobId}`]),
            ...(query.cellId === null ? [] : [sql`cell_id = ${query.cellId}`])
          ])
        } ORDER BY id LIMIT ${query.limit}`.pipe(
          Effect.flatMap(decodeEvents),
          storageFailure("cannot read the events journal"),
          Effect.withSpan("StateRepository.pageEvents")
        ),

      legacyHandledFiles: Effect.fn("StateRepository.legacyHandledFiles")(function*(source) {
        const rows = yield* sql`SELECT path, outcome, fingerprint FROM legacy_import_files WHERE source = ${source}`
          .pipe(
            Effect.flatMap(Schema.decodeUnknown(Schema.Array(LegacyFileRow)))
          )
        return new Map(rows.map((row) => [row.path, { outcome: row.outcome, fingerprint: row.fingerprint }]))
      }, storageFailure("cannot read the record of earlier imports")),

      takenIds: Effect.fn("StateRepository.takenIds")(function*(query) {
        const cells = yield* lookup(
          query.cellIds,
          (ids) => sql<{ id: string; dir: string }>`SELECT id, dir FROM cells WHERE ${sql.in("id", ids)}`
        )
        const names = yield* lookup(
          query.cellNames,
          (chunk) => sql<{ name: string }>`SELECT name FROM cells WHERE ${sql.in("name", chunk)}`
        )
        const prefixed = yield* sql<
          { name: string }
        >`SELECT name FROM cells WHERE substr(name, 1, ${query.namePrefix.length}) = ${query.namePrefix}`
        const jobs = yield* lookup(
          query.jobIds,
          (ids) => sql<{ id: string }>`SELECT id FROM jobs WHERE ${sql.in("id", ids)}`
        )
        return {
          cells: new Map(cells.map((row) => [row.id, row.dir])),
          cellNames: new Set([...names, ...prefixed].map((row) => row.name)),
          jobIds: new Set(jobs.map((row) => row.id))
        }
      }, storageFailure("cannot read cells and jobs")),

      importLegacy: Effect.fn("StateRepository.importLegacy")(function*(batch: LegacyImportBatch) {
        const cells = yield* Effect.forEach(batch.cells, (cell) => encodeCell(cell))
        const jobs = yield* Effect.forEach(batch.jobs, (job) => encodeJob(job))
        const now = Date.now()
        yield* sql.withTransaction(Effect.gen(function*() {
          const [recorded] = yield* sql<{ id: number }>`INSERT INTO legacy_imports ${
            sql.insert({ source: batch.source, at_ms: now, report_json: JSON.stringify(batch.report) })
          } RETURNING id`
          // Plain INSERTs: a row that exists already fails the whole import rather than being overwritten.
          yield* inChunks(cells, (chunk) => sql`INSERT INTO cells ${sql.insert(chunk)}`)
          yield* inChunks(jobs, (chunk) => sql`INSERT INTO jobs ${sql.insert(chunk)}`)
          const events: Array<JournalEvent> = [
            ...batch.events,
            {
              kind: "legacy_import",
              cell_id: null,
              job_id: null,
              detail: { source: batch.source, import_id: recorded!.id, ...batch.summary }
            }
          ]
          yield* inChunks(
            events,
            (chunk) => sql`INSERT INTO events ${sql.insert(chunk.map((event) => eventRow(event, now)))}`
          )
          yield* inChunks(
            batch.files,
            (chunk) =>
              sql`INSERT INTO legacy_import_files ${
                sql.insert(chunk.map((file) => ({ source: batch.source, import_id: recorded!.id, ...file })))
              } ON CONFLICT (source, path) DO UPDATE SET
              import_id = excluded.import_id,
              record_id = excluded.record_id,
              outcome = excluded.outcome,
              reason = excluded.reason,
              fingerprint = excluded.fingerprint`
          )
        }))
        yield* wake
      }, storageFailure("cannot record the import of the prototype's state"))
    })
  })

/** The repository over the provided SqlClient alone. */
export const make = makeWith(null)

/**
 * The repository over an already provided SqlClient on `filename`, after applying pending migrations, with a
 * direct connection to the same file for the statements of a job's start and end.
 */
const layerFromClient = (filename: string) =>
  Layer.scoped(
    StateRepository,
    Effect.zipRight(runMigrations, Effect.flatMap(SqliteDirect.make(filename), (direct) => makeWith(direct)))
  ).pipe(Layer.provide(NodeContext.layer))

/** The repository on `filename` (WAL); closing the layer closes the database. */
export const layer = (filename: string) =>
  layerFromClient(filename).pipe(Layer.provide(SqliteClient.layer({ filename })))

/**
 * The repository on a private copy of the database at `filename` (and its
 * WAL, so commits not yet checkpointed are there too), or on an empty one
 * when there is none: reads see the state dir as it is, writes and
 * migrations touch only the copy, which is deleted when the layer closes.
 * For a dry run that must not change anything under the state dir.
 */
export const layerSnapshot = (filename: string) =>
  Layer.unwrapScoped(
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => {
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-snapshot-"))
          const copy = path.join(dir, path.basename(filename))
          for (const suffix of ["", "-wal"]) {
            if (fs.existsSync(filename + suffix)) fs.copyFileSync(filename + suffix, copy + suffix)
          }
          return { dir, copy }
        }),
        ({ dir }) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      ),
      ({ copy }) => layer(copy)
    )
  )
