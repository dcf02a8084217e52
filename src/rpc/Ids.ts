import { Schema } from "effect"

/**
 * Ids reach file paths (cell dirs, log files) and queries, so they are
 * validated before anything else sees them: a fixed prefix, then only
 * lowercase letters and digits — no dots, slashes or separators.
 */
const idPattern = (prefix: string) => new RegExp(`^${prefix}-[a-z0-9]{1,40}$`)

export const CellId = Schema.String.pipe(
  Schema.pattern(idPattern("cell"), {
    message: () => "a cell id looks like cell-<letters and digits>, as printed by `planter create` or `planter cell ls`"
  }),
  Schema.brand("CellId")
)
export type CellId = typeof CellId.Type

export const JobId = Schema.String.pipe(
  Schema.pattern(idPattern("job"), {
    message: () => "a job id looks like job-<letters and digits>, as printed by `planter run` or `planter job ls`"
  }),
  Schema.brand("JobId")
)
export type JobId = typeof JobId.Type
