import { Effect, Layer, Option, Schema } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Conflict, Internal, InvalidRequest, NotFound } from "../rpc/Errors.js"
import { CellId } from "../rpc/Ids.js"
import { Cell } from "../rpc/Models.js"
import type { CreateCellRequest } from "../services/Cells.js"
import { cellNameProblem, Cells } from "../services/Cells.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import { StateRepository } from "../services/StateRepository.js"
import { crashPoint } from "./CrashPoints.js"
import { stateToInternal } from "./ErrorMapping.js"

const newCellId = () => `cell-${Date.now().toString(36)}${randomBytes(4).toString("hex")}` as CellId

/** Host views no job may be granted: each job gets its own /proc and /dev, and none of /sys or /run. */
const KERNEL_FILESYSTEMS = ["/proc", "/sys", "/dev", "/run"]

const realpathOr = (file: string) => {
  try {
    return fs.realpathSync(file)
  } catch {
    return file
  }
}

const isInside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep)

export const make = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const repo = yield* StateRepository
  const supervisor = yield* JobSupervisor
  const paths = statePaths(config.stateDir)
  const stateReal = fs.realpathSync(config.stateDir)
  const socketDir = realpathOr(path.dirname(path.resolve(config.socketPath)))
  const kernelReal = KERNEL_FILESYSTEMS.map(realpathOr)

  /**
   * A granted path must exist and must not expose what the sandbox hides:
   * the state dir (database, cells, logs), the daemon's socket, or the
   * host's kernel and runtime views (/proc would show the daemon's own
   * root, fds and environment). Checked on the real path, so a symlink
   * cannot smuggle one in.
   */
  const checkReadPath = (raw: string): string | InvalidRequest => {
    if (!path.isAbsolute(raw)) return new InvalidRequest({ message: `--read ${raw}: give an absolute path` })
    let real: string
    try {
      real = fs.realpathSync(raw)
    } catch {
      return new InvalidRequest({ message: `--read ${raw}: no such file or directory` })
    }
    const shown = real === raw ? raw : `${raw} (${real})`
    const kernel = KERNEL_FILESYSTEMS.find((_, i) => isInside(real, kernelReal[i]!) || isInside(kernelReal[i]!, real))
    if (kernel !== undefined) {
      return new InvalidRequest({
        message: `--read ${shown} would expose the host's ${kernel} to jobs (the daemon's processes, devices and runtime files): jobs get their own ${kernel === "/run" ? "environment" : kernel}; grant a narrower path outside it`
      })
    }
    if (isInside(stateReal, real) || isInside(real, stateReal) || isInside(socketDir, real) || isInside(real, socketDir)) {
      return new InvalidRequest({
        message: `--read ${shown} would expose the daemon's state dir or socket to jobs (${stateReal}, ${socketDir}): grant a narrower path outside both`
      })
    }
    return real
  }

  const create = Effect.fn("Cells.create")(function*(request: CreateCellRequest) {
    const problem = cellNameProblem(request.name)
    if (problem !== undefined) return yield* new InvalidRequest({ message: problem })
    const readPaths: Array<string> = []
    for (const raw of request.read_paths) {
      const checked = checkReadPath(raw)
      if (checked instanceof InvalidRequest) return yield* checked
      readPaths.push(checked)
    }
    if (Option.isSome(yield* stateToInternal(repo.findCellByName(request.name)))) {
      return yield* new Conflict({ message: `a cell named ${request.name} already exists: pick another name or remove it first` })
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
      created_at_ms: Date.now()
    })
    yield* Effect.try({
      try: () => fs.mkdirSync(dir, { recursive: true, mode: 0o700 }),
      catch: (error) => new Internal({ message: `cannot create the cell dir ${dir}: ${String(error)}` })
    })
    yield* stateToInternal(repo.insertCell(cell)).pipe(
      Effect.tapError(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    )
    return cell
  })

  const resolve = Effect.fn("Cells.resolve")(function*(idOrName: string) {
    const found = idOrName.startsWith("cell-")
      ? yield* Schema.decodeUnknown(CellId)(idOrName).pipe(
        Effect.mapError(() =>
          new InvalidRequest({
            message: `invalid cell id ${JSON.stringify(idOrName.slice(0, 80))}: a cell id looks like cell-<letters and digits>, as printed by \`planter cell ls\``
          })
        ),
        Effect.flatMap((id) => stateToInternal(repo.getCell(id)))
      )
      : cellNameProblem(idOrName) === undefined
      ? yield* stateToInternal(repo.findCellByName(idOrName))
      : yield* new InvalidRequest({
        message: `invalid cell ${JSON.stringify(idOrName.slice(0, 80))}: give a cell id (cell-…) or name, as printed by \`planter cell ls\``
      })
    if (Option.isNone(found)) {
      return yield* new NotFound({ message: `no cell ${idOrName}: list cells with \`planter cell ls\`` })
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
    yield* stateToInternal(repo.deleteCell(cell.id))
  })

  const remove = Effect.fn("Cells.remove")(function*(idOrName: string, options: { readonly force: boolean }) {
    const cell = yield* resolve(idOrName)
    // Without --force a cell with running jobs is refused before anything changes.
    if (!options.force) yield* supervisor.stopCell(cell.id, options)
    yield* stateToInternal(repo.markCellRemoving(cell.id))
    yield* crashPoint("cell-marked-removing")
    yield* finishRemoval(cell)
    return cell
  })

  return Cells.of({ create, list: stateToInternal(repo.listCells), resolve, remove, finishRemoval })
})

export const layer = Layer.effect(Cells, make)
