import { Effect, Layer, Option, Schema } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { CellId } from "../rpc/Ids.js"
import { Cell, CellPage } from "../rpc/Models.js"
import type { CreateCellRequest } from "../services/Cells.js"
import { cellNameProblem, Cells } from "../services/Cells.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { DaemonFault, InvalidInput, StateConflict, UnknownEntity } from "../services/DomainErrors.js"
import { hotSpan } from "../services/HotSpan.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import { checkLimits } from "../services/Limits.js"
import { encodeCursor, pageOf } from "../services/Paging.js"
import type { CellQuery } from "../services/StateRepository.js"
import { StateRepository } from "../services/StateRepository.js"
import { crashPoint } from "./CrashPoints.js"
import { makeReadGrantPolicy } from "./ReadGrants.js"

const newCellId = () => `cell-${Date.now().toString(36)}${randomBytes(4).toString("hex")}` as CellId

export const make = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const repo = yield* StateRepository
  const supervisor = yield* JobSupervisor
  const paths = statePaths(config.stateDir)
  const grants = makeReadGrantPolicy(config)

  const create = Effect.fn("Cells.create")(function*(request: CreateCellRequest) {
    const problem = cellNameProblem(request.name)
    if (problem !== undefined) return yield* new InvalidInput({ message: problem })
    const limits = checkLimits(request.limits ?? null)
    if (!("timeout_ms" in limits)) return yield* limits
    const readPaths: Array<string> = []
    for (const raw of request.read_paths) {
      const checked = grants.check(raw)
      if (checked instanceof InvalidInput) return yield* checked
      readPaths.push(checked)
    }
    if (Option.isSome(yield* repo.findCellByName(request.name))) {
      return yield* new StateConflict({
        message: `a cell named ${request.name} already exists: pick another name or remove it first`
      })
    }
    const id = newCellId()
    const dir = path.join(paths.cells, id)
    const cell = new Cell({
      id,
      name: request.name,
      env: request.env,
      read_paths: readPaths,
      network: request.network,
      dir,
      created_at_ms: Date.now(),
      owner_uid: request.owner_uid,
      limits: Object.values(limits).every((value) => value === null) ? null : { ...limits }
    })
    yield* Effect.try({
      try: () => fs.mkdirSync(dir, { recursive: true, mode: 0o700 }),
      catch: (error) => new DaemonFault({ message: `cannot create the cell dir ${dir}: ${String(error)}` })
    })
    yield* repo.insertCell(cell).pipe(
      Effect.tapError(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    )
    return cell
  })

  // Run by every request that names a cell (each JobRun): its span is made as those on a job's start are (HotSpan).
  const resolve = (idOrName: string) => resolveUntraced(idOrName).pipe(hotSpan("Cells.resolve"))
  const resolveUntraced = Effect.fnUntraced(function*(idOrName: string) {
    const found = idOrName.startsWith("cell-")
      ? yield* Schema.decodeUnknown(CellId)(idOrName).pipe(
        Effect.mapError(() =>
          new InvalidInput({
            message: `invalid cell id ${
              JSON.stringify(idOrName.slice(0, 80))
            }: a cell id looks like cell-<letters and digits>, as printed by \`planter cell ls\``
          })
        ),
        Effect.flatMap((id) => repo.getCell(id))
      )
      : cellNameProblem(idOrName) === undefined
      ? yield* repo.findCellByName(idOrName)
      : yield* new InvalidInput({
        message: `invalid cell ${
          JSON.stringify(idOrName.slice(0, 80))
        }: give a cell id (cell-…) or name, as printed by \`planter cell ls\``
      })
    if (Option.isNone(found)) {
      return yield* new UnknownEntity({ message: `no cell ${idOrName}: list cells with \`planter cell ls\`` })
    }
    return found.value
  })

  /**
   * The part of a removal that must finish even across a crash: kill the
   * cell's jobs, delete its dir, then its row. The row carries a tombstone
   * from the start, so a daemon killed midway finishes here on its next start.
   */
  const finishRemoval = Effect.fn("Cells.finishRemoval")(function*(cell: Cell) {
    yield* supervisor.stopCell(cell.id, { force: true })
    // Asynchronous: a cell with many files must not stall every other client.
    yield* Effect.tryPromise(() => fs.promises.rm(cell.dir, { recursive: true, force: true })).pipe(
      Effect.catchAll((error) => Effect.logWarning(`cannot delete ${cell.dir}; it is left on disk`, error))
    )
    yield* repo.deleteCell(cell.id)
  })

  const remove = Effect.fn("Cells.remove")(function*(idOrName: string, options: { readonly force: boolean }) {
    const cell = yield* resolve(idOrName)
    // Without --force a cell with running jobs is refused before anything changes.
    if (!options.force) yield* supervisor.stopCell(cell.id, options)
    yield* repo.markCellRemoving(cell.id)
    yield* crashPoint("cell-marked-removing")
    yield* finishRemoval(cell)
    return cell
  })

  const page = (query: CellQuery) =>
    Effect.map(repo.pageCells({ ...query, limit: query.limit + 1 }), (rows) => {
      const { items, next } = pageOf(rows, query.limit, (cell) => encodeCursor(cell.created_at_ms, cell.id))
      return new CellPage({ cells: items, next })
    })

  return Cells.of({ create, list: repo.listCells, page, resolve, remove, finishRemoval })
})

export const layer = Layer.effect(Cells, make)
