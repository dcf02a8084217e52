import { Clock, Effect, Either, Layer } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { statePaths } from "../services/DaemonConfig.js"
import { DaemonFault, InvalidInput } from "../services/DomainErrors.js"
import type {
  ImportReport,
  ImportRequest,
  LegacyCellRecord,
  ReportEntry,
  ScannedFile,
  ScannedJob
} from "../services/LegacyImport.js"
import {
  decodeCellFile,
  decodeJobFile,
  handledBefore,
  isEmptyReport,
  LegacyImport,
  legacyPaths,
  planImport,
  summaryLine
} from "../services/LegacyImport.js"
import { ProcessProbe } from "../services/ProcessProbe.js"
import type { JournalEvent } from "../services/StateRepository.js"
import { StateRepository } from "../services/StateRepository.js"

/** No prototype record comes near this; a larger file is not one, and is not read whole. */
const MAX_RECORD_BYTES = 1024 * 1024

/**
 * The key an import of the state dir itself is recorded under: the same
 * wherever the state dir is moved, so a moved state dir is not imported again.
 */
const IN_PLACE_SOURCE = "."

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException).code

/** Why a file under the source could not be read, in a few words. */
const readProblem = (error: unknown): string => {
  switch (errorCode(error)) {
    case "EACCES":
    case "EPERM":
      return "unreadable: permission denied"
    case "ENOENT":
      return "vanished while it was being read"
    case "ELOOP":
      return "a symlink: never followed"
    case "EISDIR":
      return "a directory, not a record file"
    default:
      return `unreadable: ${(error as Error).message}`
  }
}

const fingerprintOf = (stat: fs.Stats) => `${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`

/** A record file's text, or why it cannot be read; never through a symlink, never more than MAX_RECORD_BYTES. */
const readRecordFile = (
  file: string
): { readonly fingerprint: string; readonly text: Either.Either<string, string> } => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (error) {
    let fingerprint = "unreadable"
    try {
      fingerprint = fingerprintOf(fs.lstatSync(file))
    } catch {
      // Gone: the fingerprint stays "unreadable".
    }
    return { fingerprint, text: Either.left(readProblem(error)) }
  }
  try {
    const stat = fs.fstatSync(fd)
    const fingerprint = fingerprintOf(stat)
    if (!stat.isFile()) return { fingerprint, text: Either.left("not a regular file") }
    if (stat.size > MAX_RECORD_BYTES) {
      return { fingerprint, text: Either.left(`${stat.size} bytes: too large for a prototype record`) }
    }
    return { fingerprint, text: Either.right(fs.readFileSync(fd, "utf8")) }
  } catch (error) {
    return { fingerprint: "unreadable", text: Either.left(readProblem(error)) }
  } finally {
    fs.closeSync(fd)
  }
}

/** A dir's entries, or none when it does not exist; any other failure is reported and reads as none. */
const listDir = (dir: string, problems: Array<ReportEntry>): Array<fs.Dirent> => {
  try {
    // Sorted, so that reports list files in the same order on every machine.
    return fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  } catch (error) {
    if (errorCode(error) !== "ENOENT") {
      problems.push({ path: dir, reason: `${readProblem(error)}: nothing in it was imported` })
    }
    return []
  }
}

/** The names in `dir` (empty when it does not exist). */
const namesIn = (dir: string) => {
  try {
    return new Set(fs.readdirSync(dir))
  } catch {
    return new Set<string>()
  }
}

/** The prototype's record files and logs as found under `source`, before any is read. */
interface Listing {
  /** Dirs under `cells/`, by name. */
  readonly cellDirs: ReadonlyArray<string>
  /** `cells/<name>/cell.json` that exist (a file, or something that is not one), by dir name. */
  readonly cellFiles: ReadonlyArray<string>
  /** Entries of `jobs/`: name, and why it is not a record file when it is not one. */
  readonly jobEntries: ReadonlyArray<{ readonly name: string; readonly problem?: string }>
  /** Regular files under `logs/`. */
  readonly logs: ReadonlySet<string>
  readonly problems: Array<ReportEntry>
}

const listSource = (source: string): Listing => {
  const problems: Array<ReportEntry> = []
  const cellDirs: Array<string> = []
  const cellFiles: Array<string> = []
  for (const entry of listDir(path.join(source, "cells"), problems)) {
    if (!entry.isDirectory()) continue
    cellDirs.push(entry.name)
    try {
      fs.lstatSync(path.join(source, legacyPaths.cellFile(entry.name)))
      cellFiles.push(entry.name)
    } catch (error) {
      if (errorCode(error) !== "ENOENT") cellFiles.push(entry.name) // Reading it will say what is wrong.
    }
  }
  const jobEntries = listDir(path.join(source, "jobs"), problems).map((entry) =>
    entry.name.endsWith(".json") && (entry.isFile() || entry.isSymbolicLink())
      ? { name: entry.name }
      : { name: entry.name, problem: "not a job record: jobs/ holds <job id>.json files" }
  )
  const logs = new Set(
    listDir(path.join(source, "logs"), problems).filter((entry) => entry.isFile()).map((entry) => entry.name)
  )
  return { cellDirs, cellFiles, jobEntries, logs, problems }
}

/**
 * Copies `from` (a file, dir or symlink) to `to`, which must not exist, as
 * its owner would see it: modes and times kept, symlinks copied as links
 * (never followed), sockets, FIFOs and devices left out. What cannot be
 * read is reported in `problems` and the rest is copied; a write that fails
 * (a full disk) throws. Dry, only reads.
 */
const copyTree = (
  from: string,
  to: string,
  options: { readonly dry: boolean; readonly leaveOut?: string },
  problems: Array<ReportEntry>
) => {
  let stat: fs.Stats
  try {
    stat = fs.lstatSync(from)
  } catch (error) {
    problems.push({ path: from, reason: `${readProblem(error)}: not copied` })
    return
  }
  if (stat.isDirectory()) {
    let names: Array<string>
    try {
      names = fs.readdirSync(from)
    } catch (error) {
      problems.push({ path: from, reason: `${readProblem(error)}: this directory and what it holds were not copied` })
      return
    }
    if (!options.dry) fs.mkdirSync(to, { mode: 0o700 })
    for (const name of names) {
      if (name !== options.leaveOut) {
        copyTree(path.join(from, name), path.join(to, name), { dry: options.dry }, problems)
      }
    }
    if (!options.dry) {
      fs.chmodSync(to, stat.mode & 0o777)
      fs.utimesSync(to, stat.atime, stat.mtime)
    }
  } else if (stat.isFile()) {
    try {
      fs.accessSync(from, fs.constants.R_OK)
    } catch (error) {
      problems.push({ path: from, reason: `${readProblem(error)}: not copied` })
      return
    }
    if (options.dry) return
    fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL)
    fs.chmodSync(to, stat.mode & 0o777)
    fs.utimesSync(to, stat.atime, stat.mtime)
  } else if (stat.isSymbolicLink()) {
    let target: string
    try {
      target = fs.readlinkSync(from)
    } catch (error) {
      problems.push({ path: from, reason: `${readProblem(error)}: not copied` })
      return
    }
    if (!options.dry) fs.symlinkSync(target, to)
  } else {
    problems.push({ path: from, reason: "a socket, FIFO or device: not copied" })
  }
}

/** Each import's logs are copied through one buffer of this size, allocated for that import and dropped after it. */
const COPY_BUFFER_BYTES = 1024 * 1024

/**
 * Copies one log to `to`, created new (never over a file that exists) and
 * private (0600): answers why the source cannot be read, or undefined once
 * copied; a failed write (a full disk) throws. `created` is called as soon
 * as `to` exists, so a failure can remove it. An empty log is not copied:
 * Planter reads a missing log as empty, from offset 0, exactly as it would
 * the empty file, and most jobs leave one stream empty (creating files is
 * most of what a large import costs).
 */
const copyLog = (copyBuffer: Buffer, from: string, to: string, created: () => void): string | undefined => {
  let input: number
  try {
    input = fs.openSync(from, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
  } catch (error) {
    return readProblem(error)
  }
  try {
    const size = fs.fstatSync(input).size
    if (size === 0) return undefined
    const output = fs.openSync(to, "wx", 0o600)
    created()
    try {
      let copied = 0
      for (;;) {
        let read: number
        try {
          read = fs.readSync(input, copyBuffer, 0, copyBuffer.length, null)
        } catch (error) {
          return `${readProblem(error)} after some of it was copied`
        }
        if (read === 0) return undefined
        fs.writeSync(output, copyBuffer, 0, read)
        copied += read
        // A short read at the recorded size is the end: no need to ask again.
        if (read < copyBuffer.length && copied >= size) return undefined
      }
    } finally {
      fs.closeSync(output)
    }
  } finally {
    fs.closeSync(input)
  }
}

const faultOf = (what: string) => (error: unknown) =>
  new DaemonFault({
    message: `${what}: ${
      errorCode(error) === "ENOSPC" ? "no space left on device" : (error as Error).message
    }; nothing was imported`
  })

export const make = (stateDir: string) =>
  Effect.gen(function*() {
    const repo = yield* StateRepository
    const probe = yield* ProcessProbe
    const paths = statePaths(stateDir)

    const run = Effect.fn("LegacyImport.run")(function*(request: ImportRequest) {
      const source = yield* Effect.try({
        try: () => {
          const real = fs.realpathSync(path.resolve(request.source))
          if (!fs.statSync(real).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" })
          return real
        },
        catch: (error) =>
          new InvalidInput({
            message: `cannot import from ${request.source}: ${
              errorCode(error) === "ENOTDIR" ? "not a directory" : readProblem(error)
            }`
          })
      })
      const realStateDir = (() => {
        try {
          return fs.realpathSync(stateDir)
        } catch {
          return path.resolve(stateDir) // Not created yet (a dry run).
        }
      })()
      const inPlace = source === realStateDir
      const key = inPlace ? IN_PLACE_SOURCE : source
      const now = yield* Clock.currentTimeMillis
      yield* Effect.annotateCurrentSpan({ source, inPlace, dryRun: request.dryRun })

      const listing = listSource(source)
      const empty: ImportReport = {
        source,
        state_dir: stateDir,
        dry_run: request.dryRun,
        cells: 0,
        placeholder_cells: 0,
        jobs: 0,
        lost_jobs: 0,
        logs: 0,
        previously_handled: 0,
        skipped: listing.problems,
        notes: []
      }
      if (listing.cellFiles.length === 0 && listing.jobEntries.length === 0) return empty

      // Read every record file no earlier import of this source dealt with.
      const handled = yield* repo.legacyHandledFiles(key)
      let previouslyHandled = 0
      const fingerprintNow = (relative: string) => () => {
        try {
          return fingerprintOf(fs.lstatSync(path.join(source, relative)))
        } catch {
          return "unreadable"
        }
      }
      const cells: Array<ScannedFile<LegacyCellRecord>> = []
      for (const dir of listing.cellFiles) {
        const relative = legacyPaths.cellFile(dir)
        if (handledBefore(handled, relative, fingerprintNow(relative))) {
          previouslyHandled++
          continue
        }
        const { fingerprint, text } = readRecordFile(path.join(source, relative))
        cells.push({ path: relative, placeId: dir, fingerprint, record: Either.flatMap(text, decodeCellFile) })
      }
      const jobs: Array<ScannedJob> = []
      for (const entry of listing.jobEntries) {
        const relative = path.join("jobs", entry.name)
        if (handledBefore(handled, relative, fingerprintNow(relative))) {
          previouslyHandled++
          continue
        }
        const placeId = entry.name.replace(/\.json$/, "")
        const logs = {
          stdout: listing.logs.has(path.basename(legacyPaths.log(placeId, "stdout"))),
          stderr: listing.logs.has(path.basename(legacyPaths.log(placeId, "stderr")))
        }
        if (entry.problem !== undefined) {
          jobs.push({
            path: relative,
            placeId,
            fingerprint: fingerprintNow(relative)(),
            record: Either.left(entry.problem),
            logs
          })
          continue
        }
        const { fingerprint, text } = readRecordFile(path.join(source, relative))
        jobs.push({ path: relative, placeId, fingerprint, record: Either.flatMap(text, decodeJobFile), logs })
      }

      const cellRecords = cells.flatMap((file) => Either.isRight(file.record) ? [file.record.right] : [])
      const jobRecords = jobs.flatMap((file) => Either.isRight(file.record) ? [file.record.right] : [])
      const taken = yield* repo.takenIds({
        cellIds: [...listing.cellDirs, ...cellRecords.map((cell) => cell.id), ...jobRecords.map((job) => job.cell_id)],
        cellNames: cellRecords.map((cell) => cell.spec.name),
        namePrefix: "legacy-",
        jobIds: jobRecords.map((job) => job.id)
      })
      // In place, a cell dir that belongs to a cell already recorded is that cell's own (a
      // cell.json in it is its user's file, or one imported before): not a prototype record.
      const candidates = inPlace ? cells.filter((file) => !taken.cells.has(file.placeId)) : cells
      const livePids = jobRecords.some((job) => job.status.type === "running")
        ? new Set((yield* probe.snapshot).filter((entry) => !entry.zombie).map((entry) => entry.pid))
        : new Set<number>()

      const plan = planImport({
        stateDir,
        source,
        inPlace,
        now,
        cells: candidates,
        jobs,
        sourceCellDirs: new Set(listing.cellDirs),
        existing: {
          cells: taken.cells,
          cellNames: taken.cellNames,
          jobIds: taken.jobIds,
          targetCellDirs: inPlace ? new Set() : namesIn(paths.cells),
          targetLogs: inPlace ? new Set() : namesIn(paths.logs)
        },
        livePids,
        previouslyHandled
      })

      // What cannot be copied (an unreadable user file, a FIFO) is reported; the rest is imported.
      const copyProblems: Array<ReportEntry> = []
      const unreadableLogs: Array<ReportEntry> = []
      const staging = path.join(paths.tmp, `legacy-import-${randomBytes(6).toString("hex")}`)
      /** What this import put under the state dir, removed again if it fails. */
      const placed: Array<string> = []
      const undo = () => {
        for (const target of placed.reverse()) fs.rmSync(target, { recursive: true, force: true })
      }
      const logUnreadable = (from: string, problem: string) => {
        const job = path.basename(from).replace(/\.(stdout|stderr)\.log$/, "")
        const what = problem.endsWith("after some of it was copied")
          ? "what was copied of this log"
          : "this log reads as empty"
        unreadableLogs.push({ path: from, reason: `${problem}: job ${job} is imported and ${what}` })
      }
      /**
       * Cell dirs are copied whole into a staging dir under tmp/ and then
       * renamed into place, so a crash never leaves a half-copied cell where
       * Planter looks (the reconciler removes what is left in tmp/). Logs
       * are copied straight to their place, each created new (never over a
       * file that exists), private.
       */
      const copyAll = (dry: boolean) => {
        const copyBuffer = Buffer.allocUnsafe(dry ? 0 : COPY_BUFFER_BYTES)
        for (const copy of plan.copies) {
          if (copy.kind === "cell-dir") {
            const at = path.join(staging, path.basename(copy.to))
            if (!dry) fs.mkdirSync(staging, { recursive: true, mode: 0o700 })
            copyTree(copy.from, at, { dry, leaveOut: "cell.json" }, copyProblems)
            if (dry) continue
            // A cell dir that could not be read at all is imported empty (the problem is reported).
            if (!fs.existsSync(at)) fs.mkdirSync(at, { mode: 0o700 })
            fs.chmodSync(at, 0o700)
            fs.renameSync(at, copy.to)
            placed.push(copy.to)
            continue
          }
          if (dry) {
            try {
              fs.accessSync(copy.from, fs.constants.R_OK)
            } catch (error) {
              logUnreadable(copy.from, readProblem(error))
            }
            continue
          }
          const problem = copyLog(copyBuffer, copy.from, copy.to, () => placed.push(copy.to))
          if (problem !== undefined) logUnreadable(copy.from, problem)
        }
      }

      if (request.dryRun) {
        yield* Effect.try({ try: () => copyAll(true), catch: faultOf(`cannot read ${source}`) })
      } else if (plan.files.length > 0) {
        yield* Effect.try({
          try: () => {
            copyAll(false)
            for (const dir of plan.createDirs) {
              if (fs.existsSync(dir)) continue
              fs.mkdirSync(dir, { mode: 0o700 })
              placed.push(dir)
            }
          },
          catch: faultOf(`cannot copy the prototype's files into ${stateDir}`)
        }).pipe(
          Effect.tapError(() => Effect.sync(undo)),
          Effect.ensuring(Effect.sync(() => fs.rmSync(staging, { recursive: true, force: true })))
        )
      }

      const report: ImportReport = {
        ...plan.report,
        dry_run: request.dryRun,
        logs: plan.report.logs - unreadableLogs.length,
        skipped: [...listing.problems, ...plan.report.skipped, ...unreadableLogs, ...copyProblems]
      }
      if (request.dryRun || plan.files.length === 0) return report

      const events: Array<JournalEvent> = plan.lost.map(({ job, note }) => ({
        kind: "job_lost",
        cell_id: job.cell_id,
        job_id: job.id,
        detail: { termination_reason: "lost", exit_code: null, pid: job.pid, note }
      }))
      yield* repo.importLegacy({
        source: key,
        cells: plan.cells,
        jobs: plan.jobs,
        events,
        files: plan.files,
        report: { ...report },
        summary: {
          path: source,
          cells: report.cells,
          placeholder_cells: report.placeholder_cells,
          jobs: report.jobs,
          lost_jobs: report.lost_jobs,
          logs: report.logs,
          skipped: report.skipped.length
        }
      }).pipe(Effect.tapError(() => Effect.sync(undo)))
      return report
    })

    return LegacyImport.of({ run })
  })

export const layer = (stateDir: string) => Layer.effect(LegacyImport, make(stateDir))

/**
 * The import at daemon start, before the reconciler and before the socket
 * opens: the prototype's records found in the state dir itself and not yet
 * imported are, in one transaction, and one line says what was imported and
 * every file skipped and why. Nothing to import: nothing said.
 */
export const importAtStart = (stateDir: string) =>
  Effect.gen(function*() {
    const legacy = yield* LegacyImport
    const report = yield* legacy.run({ source: stateDir, dryRun: false })
    if (isEmptyReport(report)) return
    yield* report.skipped.length > 0 ? Effect.logWarning(summaryLine(report)) : Effect.logInfo(summaryLine(report))
  }).pipe(Effect.withSpan("LegacyImport.atStart"))

export const atStartLayer = (stateDir: string) =>
  Layer.effectDiscard(importAtStart(stateDir)).pipe(Layer.provide(layer(stateDir)))
