import { Context } from "effect"
import type { Effect } from "effect"
import type { Cell, CellPage, Env, LimitName, NetworkPolicy } from "../rpc/Models.js"
import type { DaemonFault, InvalidInput, LimitRejected, StateConflict, UnknownEntity } from "./DomainErrors.js"
import type { CellQuery, StateError } from "./StateRepository.js"

export interface CreateCellRequest {
  readonly name: string
  readonly env: Env
  readonly read_paths: ReadonlyArray<string>
  readonly network: NetworkPolicy
  /** The uid of the caller creating it: only it (or an admin) may remove it or run jobs in it. */
  readonly owner_uid: number | null
  /** Default limits of its jobs (each a positive whole number or null); a job may tighten them. */
  readonly limits?: { readonly [K in LimitName]?: number | null | undefined } | null | undefined
}

/** Cells: a named directory under the state dir with its env and sandbox policy. */
export interface CellsShape {
  readonly create: (
    request: CreateCellRequest
  ) => Effect.Effect<Cell, InvalidInput | LimitRejected | StateConflict | DaemonFault | StateError>
  readonly list: Effect.Effect<ReadonlyArray<Cell>, DaemonFault | StateError>
  /** One page of cells, oldest first; `next` pages on. */
  readonly page: (query: CellQuery) => Effect.Effect<CellPage, DaemonFault | StateError>
  /** Finds a cell by id (`cell-…`) or by name. */
  readonly resolve: (idOrName: string) => Effect.Effect<Cell, InvalidInput | UnknownEntity | DaemonFault | StateError>
  readonly remove: (
    idOrName: string,
    options: { readonly force: boolean }
  ) => Effect.Effect<Cell, InvalidInput | UnknownEntity | StateConflict | DaemonFault | StateError>
  /** Kills the cell's jobs, deletes its dir and row; also finishes a removal a crash interrupted. */
  readonly finishRemoval: (cell: Cell) => Effect.Effect<void, StateConflict | DaemonFault | StateError>
}

export class Cells extends Context.Tag("planter/Cells")<Cells, CellsShape>() {}

const CELL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Why `name` cannot name a cell, or undefined when it can. */
export const cellNameProblem = (name: string): string | undefined => {
  if (!CELL_NAME.test(name)) {
    return `invalid cell name ${
      JSON.stringify(name.slice(0, 80))
    }: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`
  }
  if (name.startsWith("cell-")) {
    return `invalid cell name ${JSON.stringify(name)}: names starting with 'cell-' are reserved for ids`
  }
  return undefined
}
