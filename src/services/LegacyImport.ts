/**
 * The earlier prototype's JSON state and how it maps onto Planter's records.
 * Pure: the layer (src/layers/LegacyImportLive.ts) reads the files, this
 * module decodes every one through a Schema and decides, record by record,
 * what is imported, where its files go and what is skipped and why.
 *
 * The prototype's layout (see ../shared/fixtures/legacy-state-sample):
 * `cells/<cell id>/cell.json` beside the cell's own files, `jobs/<job id>.json`,
 * `logs/<job id>.stdout.log` and `.stderr.log`.
 */
import { Context, Either, ParseResult, Schema } from "effect"
import type { Effect } from "effect"
import * as path from "node:path"
import type { CellId as CellIdType } from "../rpc/Ids.js"
import { CellId, JobId } from "../rpc/Ids.js"
import type { LogStream, TerminationReason } from "../rpc/Models.js"
import { Cell, Env, Job, JobCommand, JobSandbox, OsString, ResourceLimits } from "../rpc/Models.js"
import { cellNameProblem } from "./Cells.js"
import type { DaemonFault, InvalidInput } from "./DomainErrors.js"
import type { LegacyFileOutcome, LegacyHandledFiles, StateError } from "./StateRepository.js"

// ---------------------------------------------------------------------------
// Record shapes, as the prototype's serde types write them

/** `{ id, spec: { name, env }, created_at_ms, dir }` */
export const LegacyCellRecord = Schema.Struct({
  id: CellId,
  spec: Schema.Struct({ name: Schema.String, env: Env }),
  created_at_ms: Schema.Number,
  /** Where the cell lived on the machine that wrote it: only used to rewrite the jobs' paths. */
  dir: Schema.String
})
export type LegacyCellRecord = typeof LegacyCellRecord.Type

export const LegacyStatus = Schema.Union(
  Schema.Struct({ type: Schema.Literal("running") }),
  Schema.Struct({
    type: Schema.Literal("exited"),
    /** null when the job was killed by a signal, or its exit was not known. */
    code: Schema.optionalWith(Schema.NullOr(Schema.Int), { default: () => null })
  })
)
export type LegacyStatus = typeof LegacyStatus.Type

export const LegacyTerminationReason = Schema.Literal(
  "exited",
  "terminated_by_user",
  "forced_kill",
  "timeout",
  "memory_limit",
  "log_quota",
  "unknown"
)
export type LegacyTerminationReason = typeof LegacyTerminationReason.Type

/**
 * `{ id, cell_id, command: { argv, cwd, env, limits }, stdout_path,
 * stderr_path, started_at_ms, finished_at_ms, pid, status,
 * termination_reason }`. A reason that is null or absent on an exit means a
 * plain exit.
 */
export const LegacyJobRecord = Schema.Struct({
  id: JobId,
  cell_id: CellId,
  command: Schema.Struct({
    argv: Schema.NonEmptyArray(OsString),
    cwd: Schema.NullOr(Schema.String),
    env: Env,
    limits: ResourceLimits
  }),
  stdout_path: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  stderr_path: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  started_at_ms: Schema.Number,
  finished_at_ms: Schema.NullOr(Schema.Number),
  pid: Schema.NullOr(Schema.Int),
  status: LegacyStatus,
  termination_reason: Schema.optionalWith(Schema.NullOr(LegacyTerminationReason), { default: () => null })
})
export type LegacyJobRecord = typeof LegacyJobRecord.Type

// ---------------------------------------------------------------------------
// Decoding one file

const Json = Schema.parseJson()

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

/** `command.argv[0]`, `spec.env["BAD-NAME"]`: where in a record a problem is. */
const formatPath = (at: ReadonlyArray<PropertyKey>) =>
  at.map((key, index) =>
    typeof key === "number"
      ? `[${key}]`
      : typeof key === "string" && IDENTIFIER.test(key)
      ? index === 0 ? key : `.${key}`
      : `[${JSON.stringify(String(key))}]`
  ).join("")

/** Why a file's text is not a record of `schema`, in one line; or the record. */
export const decodeRecord = <A, I>(
  schema: Schema.Schema<A, I>,
  text: string,
  what: string
): Either.Either<A, string> => {
  if (text.trim().length === 0) return Either.left(`empty: no ${what} in it (cut short by a crash?)`)
  const json = Schema.decodeUnknownEither(Json)(text)
  if (Either.isLeft(json)) {
    const detail = ParseResult.ArrayFormatter.formatErrorSync(json.left)[0]?.message ?? "invalid JSON"
    // JSON.parse stops at the end of a file cut short: "Unexpected end of JSON input",
    // or an error at a position past its last character.
    const at = /at position (\d+)/.exec(detail)
    const cutShort = /end of (JSON )?input/i.test(detail) || (at !== null && Number(at[1]) >= text.trimEnd().length)
    return Either.left(
      cutShort ? "cut short: the JSON ends mid-record (a crash while it was written?)" : `not JSON: ${detail}`
    )
  }
  return Either.mapLeft(Schema.decodeUnknownEither(schema)(json.right), (error) => {
    const [first] = ParseResult.ArrayFormatter.formatErrorSync(error)
    const where = first === undefined ? "" : formatPath(first.path)
    const message = first === undefined
      ? "does not match"
      : first._tag === "Missing"
      ? "missing"
      : first.message
    return `not a prototype ${what}: ${where === "" ? message : `${where}: ${message}`}`
  })
}

export const decodeCellFile = (text: string) => decodeRecord(LegacyCellRecord, text, "cell record")
export const decodeJobFile = (text: string) => decodeRecord(LegacyJobRecord, text, "job record")

// ---------------------------------------------------------------------------
// What the layer read

/** A record file as read: its path relative to the source, and the record or why it cannot be one. */
export interface ScannedFile<A> {
  /** Relative to the source dir, e.g. `jobs/job-1.json`. */
  readonly path: string
  /** The id its place names: the cell's dir name, or the job file's name without `.json`. */
  readonly placeId: string
  readonly record: Either.Either<A, string>
  /** Size and change time: a skipped file that changed since is considered again. */
  readonly fingerprint: string
}

/**
 * True when an earlier import of the source dealt with the file at `file`
 * and there is nothing new to do: it was imported, or it was skipped and
 * has not changed since (`fingerprint` is asked only then).
 */
export const handledBefore = (handled: LegacyHandledFiles, file: string, fingerprint: () => string | undefined) => {
  const before = handled.get(file)
  if (before === undefined) return false
  return before.outcome === "imported" || before.fingerprint === fingerprint()
}

export interface ScannedJob extends ScannedFile<LegacyJobRecord> {
  /** Which of the job's log files exist under the source's `logs/`. */
  readonly logs: { readonly stdout: boolean; readonly stderr: boolean }
}

/** The state dir as it is before this import, as far as the candidates are concerned. */
export interface ExistingState {
  /** Cells already recorded, by id, with their dir (only the ids this import asked about). */
  readonly cells: ReadonlyMap<string, string>
  /** Cell names taken (only the names this import asked about). */
  readonly cellNames: ReadonlySet<string>
  /** Job ids already recorded (only the ids this import asked about). */
  readonly jobIds: ReadonlySet<string>
  /** Copying only: cell dirs that already exist under the state dir's `cells/`, by id. */
  readonly targetCellDirs: ReadonlySet<string>
  /** Copying only: log file names that already exist under the state dir's `logs/`. */
  readonly targetLogs: ReadonlySet<string>
}

export interface PlanInput {
  readonly stateDir: string
  /** The prototype's state dir, absolute. */
  readonly source: string
  /** The source is the state dir itself: nothing is copied, the files are already where Planter wants them. */
  readonly inPlace: boolean
  readonly now: number
  readonly cells: ReadonlyArray<ScannedFile<LegacyCellRecord>>
  readonly jobs: ReadonlyArray<ScannedJob>
  /** Dirs under the source's `cells/`, by name (a cell whose cell.json is missing or bad still has its files there). */
  readonly sourceCellDirs: ReadonlySet<string>
  readonly existing: ExistingState
  /** Pids alive now (for the note on jobs recorded `running`; nothing is ever signalled). */
  readonly livePids: ReadonlySet<number>
  /** Record files left out because an earlier import of this source dealt with them (see `handledBefore`). */
  readonly previouslyHandled: number
}

// ---------------------------------------------------------------------------
// The plan

export interface ReportEntry {
  /** Absolute path of the file under the source. */
  readonly path: string
  readonly reason: string
}

export interface ReportNote {
  readonly path: string
  readonly note: string
}

/** What an import did (or, dry, would do). `--json` prints exactly this. */
export interface ImportReport {
  readonly source: string
  readonly state_dir: string
  readonly dry_run: boolean
  readonly cells: number
  /** Of `cells`: made for jobs whose cell record was missing or unreadable. */
  readonly placeholder_cells: number
  readonly jobs: number
  /** Of `jobs`: recorded `running` by the prototype and imported as `lost`. */
  readonly lost_jobs: number
  readonly logs: number
  /** Record files an earlier import of this source already imported or skipped (unchanged since): left alone. */
  readonly previously_handled: number
  /** Every file not imported (or a log not found), with why. */
  readonly skipped: ReadonlyArray<ReportEntry>
  /** Things imported with a change worth knowing (a renamed cell, a placeholder, a lost job). */
  readonly notes: ReadonlyArray<ReportNote>
}

/** A file or dir to bring from the source into the state dir (never when importing in place). */
export interface CopyOp {
  readonly kind: "cell-dir" | "log"
  readonly from: string
  readonly to: string
}

/** A job imported as `lost`, with the note the journal gets. */
export interface LostJob {
  readonly job: Job
  readonly note: string
}

export interface ImportPlan {
  readonly cells: ReadonlyArray<Cell>
  readonly jobs: ReadonlyArray<Job>
  readonly lost: ReadonlyArray<LostJob>
  readonly copies: ReadonlyArray<CopyOp>
  /** In place: cell dirs to create for placeholder cells whose dir does not exist. */
  readonly createDirs: ReadonlyArray<string>
  readonly files: ReadonlyArray<LegacyFileOutcome>
  readonly report: ImportReport
}

/** How an imported job is shown to have run: the prototype recorded no sandbox. */
export const LEGACY_SANDBOX = new JobSandbox({
  mode: "disabled",
  backend: "none",
  network: "allow",
  fallback_reason: "imported from the earlier prototype, which did not record how the job was sandboxed"
})

const CELL_FILE = "cell.json"

/** `cells/<id>/cell.json`, `cells/<id>`, `logs/<id>.<stream>.log`: relative to a state dir. */
export const legacyPaths = {
  cellFile: (id: string) => path.join("cells", id, CELL_FILE),
  cellDir: (id: string) => path.join("cells", id),
  log: (id: string, stream: LogStream) => path.join("logs", `${id}.${stream}.log`)
}

/**
 * A recorded absolute path rewritten to this state dir: `recorded` under one
 * of `roots[i].from` becomes the same place under `roots[i].to`. A path under
 * none of them names a place on the machine that wrote it, and is kept as
 * recorded (nothing ever reads or writes it).
 */
export const rewritePath = (given: string, roots: ReadonlyArray<{ readonly from: string; readonly to: string }>) => {
  // `a/../..` is resolved first, so a rewritten path never climbs out of where it was put.
  const recorded = path.normalize(given)
  for (const { from, to } of roots) {
    const base = from.replace(/\/+$/, "")
    if (base.length === 0) continue
    if (recorded === base) return to
    if (recorded.startsWith(`${base}/`)) return path.join(to, recorded.slice(base.length + 1))
  }
  return recorded
}

/** The state dir the prototype recorded, from a path it wrote under it (`<root>/<suffix>`), if it has that shape. */
const rootOf = (recorded: string | null, suffix: string): string | undefined =>
  recorded !== null && recorded.endsWith(`/${suffix}`) ? recorded.slice(0, -suffix.length - 1) : undefined

/** How a prototype job's status and reason map onto Planter's fields. */
export const mapOutcome = (record: LegacyJobRecord, now: number, livePids: ReadonlySet<number>): {
  readonly exit_code: number | null
  readonly termination_reason: TerminationReason
  readonly finished_at_ms: number | null
  readonly lostNote: string | null
} => {
  if (record.status.type === "exited") {
    return {
      exit_code: record.status.code,
      // A plain exit, whatever the code, when the prototype did not say otherwise.
      termination_reason: record.termination_reason ?? "exited",
      finished_at_ms: record.finished_at_ms,
      lostNote: null
    }
  }
  // Recorded `running`: the prototype kept no process start time, so a live
  // pid cannot be told from a stranger that reused it. Never adopted, never
  // signalled: lost, and the journal says why.
  const pidNote = record.pid === null
    ? "it recorded no pid"
    : livePids.has(record.pid)
    ? `pid ${record.pid} is alive, but the prototype recorded no process start time, so nothing proves it is this job (pids are reused); it was not adopted and not signalled`
    : `its pid ${record.pid} is gone`
  return {
    exit_code: null,
    termination_reason: "lost",
    finished_at_ms: record.finished_at_ms ?? now,
    lostNote: `imported from the earlier prototype, which recorded it running: ${pidNote}`
  }
}

/** A name for a cell: its own when Planter accepts it and it is free, else `base` made unique. */
const pickName = (wanted: string | null, base: string, taken: Set<string>): string => {
  if (wanted !== null && cellNameProblem(wanted) === undefined && !taken.has(wanted)) return wanted
  let name = base
  for (let n = 2; taken.has(name); n++) name = `${base}-${n}`
  return name
}

/** `legacy-<digits>` for `cell-<digits>`: a valid, recognisable name. */
const legacyName = (id: string) => `legacy-${id.slice("cell-".length)}`

/**
 * Decides the import: which cells and jobs become rows (ids kept), which
 * files are copied where, and what is skipped and why. Nothing already in
 * the state dir is ever overwritten: a colliding id is skipped and reported.
 */
export const planImport = (input: PlanInput): ImportPlan => {
  const { existing, now, source, stateDir } = input
  const cellsDir = path.join(stateDir, "cells")
  const logsDir = path.join(stateDir, "logs")
  const abs = (relative: string) => path.join(source, relative)
  const skipped: Array<ReportEntry> = []
  const notes: Array<ReportNote> = []
  const files: Array<LegacyFileOutcome> = []
  const copies: Array<CopyOp> = []
  const createDirs: Array<string> = []
  const takenNames = new Set(existing.cellNames)
  const skip = (file: ScannedFile<unknown>, reason: string, recordId: string | null = null) => {
    skipped.push({ path: abs(file.path), reason })
    files.push({ path: file.path, record_id: recordId, outcome: "skipped", reason, fingerprint: file.fingerprint })
  }

  // Cells first: the jobs go under them.
  const cells = new Map<string, Cell>()
  /** The prototype's own dir for each imported cell, to rewrite its jobs' paths. */
  const recordedDirs = new Map<string, string>()
  for (const file of input.cells) {
    if (Either.isLeft(file.record)) {
      skip(file, file.record.left)
      continue
    }
    const record = file.record.right
    if (record.id !== file.placeId) {
      skip(
        file,
        `it says it is ${record.id} but lies in cells/${file.placeId}/: the cell's files cannot be told apart`,
        record.id
      )
      continue
    }
    if (existing.cells.has(record.id)) {
      skip(file, `a cell with the id ${record.id} already exists in the state dir: it is not overwritten`, record.id)
      continue
    }
    if (!input.inPlace && existing.targetCellDirs.has(record.id)) {
      skip(
        file,
        `${path.join(cellsDir, record.id)} already exists and belongs to no cell: move it away and import again`,
        record.id
      )
      continue
    }
    const name = pickName(record.spec.name, legacyName(record.id), takenNames)
    takenNames.add(name)
    if (name !== record.spec.name) {
      const why = cellNameProblem(record.spec.name) ?? `the name ${record.spec.name} is taken by another cell`
      notes.push({ path: abs(file.path), note: `cell ${record.id} imported as ${name}: ${why}` })
    }
    const dir = path.join(cellsDir, record.id)
    cells.set(
      record.id,
      new Cell({
        id: record.id,
        name,
        env: record.spec.env,
        read_paths: [],
        network: "allow",
        dir,
        created_at_ms: record.created_at_ms
      })
    )
    recordedDirs.set(record.id, record.dir)
    files.push({ path: file.path, record_id: record.id, outcome: "imported", reason: null, fingerprint: null })
    if (!input.inPlace) copies.push({ kind: "cell-dir", from: abs(legacyPaths.cellDir(record.id)), to: dir })
  }

  const placeholders = new Map<string, Cell>()
  /** The cell a job goes under: imported now, already recorded, or a placeholder made for it; else why not. */
  const cellFor = (cellId: CellIdType, startedAt: number): { readonly dir: string } | string => {
    const imported = cells.get(cellId) ?? placeholders.get(cellId)
    if (imported !== undefined) return imported
    const recorded = existing.cells.get(cellId)
    if (recorded !== undefined) return { dir: recorded }
    const dir = path.join(cellsDir, cellId)
    const hasSourceDir = input.sourceCellDirs.has(cellId)
    if (!input.inPlace && existing.targetCellDirs.has(cellId)) {
      return `its cell ${cellId} has no record, and ${dir} already exists and belongs to no cell: move it away and import again`
    }
    const name = pickName(null, legacyName(cellId), takenNames)
    takenNames.add(name)
    const placeholder = new Cell({
      id: cellId,
      name,
      env: {},
      read_paths: [],
      network: "allow",
      dir,
      created_at_ms: startedAt
    })
    placeholders.set(cellId, placeholder)
    if (!input.inPlace && hasSourceDir) {
      copies.push({ kind: "cell-dir", from: abs(legacyPaths.cellDir(cellId)), to: dir })
    }
    if (!hasSourceDir) createDirs.push(dir)
    notes.push({
      path: abs(legacyPaths.cellFile(cellId)),
      note: `cell ${cellId} has no readable record: its jobs are imported under a placeholder cell named ${name}${
        hasSourceDir ? ", with its directory's files" : ", with an empty directory"
      }`
    })
    return placeholder
  }

  const jobs: Array<Job> = []
  const lost: Array<LostJob> = []
  let logs = 0
  for (const file of input.jobs) {
    if (Either.isLeft(file.record)) {
      skip(file, file.record.left)
      continue
    }
    const record = file.record.right
    if (record.id !== file.placeId) {
      skip(
        file,
        `it says it is ${record.id} but is named ${path.basename(file.path)}: its logs cannot be told apart`,
        record.id
      )
      continue
    }
    if (existing.jobIds.has(record.id)) {
      skip(file, `a job with the id ${record.id} already exists in the state dir: it is not overwritten`, record.id)
      continue
    }
    const streams = (["stdout", "stderr"] as const).filter((stream) => file.logs[stream])
    const takenLog = input.inPlace
      ? undefined
      : streams.find((stream) => existing.targetLogs.has(`${record.id}.${stream}.log`))
    if (takenLog !== undefined) {
      skip(
        file,
        `${
          path.join(logsDir, `${record.id}.${takenLog}.log`)
        } already exists and belongs to no job: move it away and import again`,
        record.id
      )
      continue
    }
    // Placeholders are dated by their first job; jobs come in any order.
    const cell = cellFor(record.cell_id, record.started_at_ms)
    if (typeof cell === "string") {
      skip(file, cell, record.id)
      continue
    }
    const placeholder = placeholders.get(record.cell_id)
    if (placeholder !== undefined && record.started_at_ms < placeholder.created_at_ms) {
      placeholders.set(record.cell_id, new Cell({ ...placeholder, created_at_ms: record.started_at_ms }))
    }

    const recordedRoot = rootOf(record.stdout_path, legacyPaths.log(record.id, "stdout")) ??
      rootOf(record.stderr_path, legacyPaths.log(record.id, "stderr")) ??
      rootOf(recordedDirs.get(record.cell_id) ?? null, legacyPaths.cellDir(record.cell_id))
    const roots = [
      ...(recordedDirs.has(record.cell_id) ? [{ from: recordedDirs.get(record.cell_id)!, to: cell.dir }] : []),
      ...(recordedRoot !== undefined
        ? [{ from: path.join(recordedRoot, legacyPaths.cellDir(record.cell_id)), to: cell.dir }]
        : []),
      ...(recordedRoot !== undefined ? [{ from: recordedRoot, to: stateDir }] : [])
    ]
    const cwd = record.command.cwd === null
      ? cell.dir
      : path.isAbsolute(record.command.cwd)
      ? rewritePath(record.command.cwd, roots)
      : path.resolve(cell.dir, record.command.cwd)

    const outcome = mapOutcome(record, now, input.livePids)
    // Built from fields the record's Schema has just checked with the same
    // field schemas; the repository encodes (and so checks) every row it
    // writes. Validating here again would double the cost of a large import.
    const unchecked = { disableValidation: true }
    const job = new Job({
      id: record.id,
      cell_id: record.cell_id,
      command: new JobCommand({
        argv: record.command.argv,
        cwd,
        env: record.command.env,
        limits: record.command.limits
      }, unchecked),
      status: "exited",
      exit_code: outcome.exit_code,
      signal: null,
      termination_reason: outcome.termination_reason,
      pid: record.pid,
      pid_start_time: null,
      started_at_ms: record.started_at_ms,
      finished_at_ms: outcome.finished_at_ms,
      sandbox: LEGACY_SANDBOX
    }, unchecked)
    jobs.push(job)
    if (outcome.lostNote !== null) {
      lost.push({ job, note: outcome.lostNote })
      notes.push({ path: abs(file.path), note: `job ${record.id}: lost: ${outcome.lostNote}` })
    }
    files.push({ path: file.path, record_id: record.id, outcome: "imported", reason: null, fingerprint: null })

    for (const stream of ["stdout", "stderr"] as const) {
      const log = legacyPaths.log(record.id, stream)
      if (!file.logs[stream]) {
        skipped.push({
          path: abs(log),
          reason: `missing: job ${record.id} is imported and its ${stream} reads as empty`
        })
        continue
      }
      logs++
      if (!input.inPlace) copies.push({ kind: "log", from: abs(log), to: path.join(stateDir, log) })
    }
  }

  const allCells = [...cells.values(), ...placeholders.values()]
  return {
    cells: allCells,
    jobs,
    lost,
    copies,
    createDirs,
    files,
    report: {
      source,
      state_dir: stateDir,
      dry_run: false,
      cells: allCells.length,
      placeholder_cells: placeholders.size,
      jobs: jobs.length,
      lost_jobs: lost.length,
      logs,
      previously_handled: input.previouslyHandled,
      skipped,
      notes
    }
  }
}

/** What an import did, in counts: the first line of every report. */
export const countsLine = (report: ImportReport): string => {
  const verb = report.dry_run ? "dry run, nothing changed: would import" : "imported"
  const counts = `${report.cells} cell(s)${
    report.placeholder_cells > 0 ? ` (${report.placeholder_cells} placeholder)` : ""
  }, ${report.jobs} job(s)${report.lost_jobs > 0 ? ` (${report.lost_jobs} lost)` : ""}, ${report.logs} log(s)`
  const before = report.previously_handled > 0
    ? `; ${report.previously_handled} record file(s) left alone (an earlier import dealt with them)`
    : ""
  return `legacy import from ${report.source}: ${verb} ${counts}${before}; ${report.skipped.length} file(s) skipped`
}

/** The one line the daemon logs: the counts, then every skipped file and why. */
export const summaryLine = (report: ImportReport): string =>
  report.skipped.length === 0
    ? countsLine(report)
    : `${countsLine(report)}: ${report.skipped.map((entry) => `${entry.path} (${entry.reason})`).join("; ")}`

/** True when the report says nothing happened and nothing was wrong: the daemon then logs nothing. */
export const isEmptyReport = (report: ImportReport) =>
  report.cells === 0 && report.jobs === 0 && report.logs === 0 && report.skipped.length === 0 &&
  report.notes.length === 0

// ---------------------------------------------------------------------------
// The service

export interface ImportRequest {
  /** The prototype's state dir; the state dir itself for the import at start. */
  readonly source: string
  /** Report what would be imported, and change nothing. */
  readonly dryRun: boolean
}

/**
 * One-way import of the prototype's JSON state into this state dir, in one
 * transaction. Idempotent: every record file it dealt with is recorded, and
 * a later import of the same source leaves it alone.
 */
export interface LegacyImportShape {
  readonly run: (request: ImportRequest) => Effect.Effect<ImportReport, InvalidInput | DaemonFault | StateError>
}

export class LegacyImport extends Context.Tag("planter/LegacyImport")<LegacyImport, LegacyImportShape>() {}
