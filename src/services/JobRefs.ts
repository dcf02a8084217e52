import { Effect, Schema } from "effect"
import { JobId } from "../rpc/Ids.js"
import { JobName } from "../rpc/Models.js"
import { InvalidInput, StateConflict, UnknownEntity } from "./DomainErrors.js"
import type { StateError, StateRepositoryShape } from "./StateRepository.js"

const shown = (raw: string) => `${JSON.stringify(raw.slice(0, 80))}${raw.length > 80 ? "…" : ""}`

const isJobName = Schema.is(JobName)

/**
 * The one place a JOB argument becomes a job id, for every request that
 * takes a JOB (status, kill, logs, stdin, rm, events…). An id (`job-…`)
 * is checked for shape only, so a removed job's id still reaches what
 * keeps it (e.g. the journal). A name means: its running job when exactly
 * one runs (names are unique among a cell's running jobs, so two can run
 * in two cells: then the id is needed), else its most recent job.
 */
export const resolveJobRef = (
  repo: StateRepositoryShape,
  raw: string
): Effect.Effect<JobId, InvalidInput | UnknownEntity | StateConflict | StateError> => {
  if (raw.startsWith("job-")) {
    return Schema.decodeUnknown(JobId)(raw).pipe(
      Effect.mapError(() =>
        new InvalidInput({
          message: `invalid job id ${
            shown(raw)
          }: a job id looks like job-<letters and digits>, as printed by \`planter run\` or \`planter job ls\``
        })
      )
    )
  }
  if (!isJobName(raw)) {
    return Effect.fail(
      new InvalidInput({
        message: `invalid job id or name ${
          shown(raw)
        }: a job id looks like job-<letters and digits>, as printed by \`planter run\` or \`planter job ls\`; a name is the one given with \`planter run --name\``
      })
    )
  }
  return Effect.gen(function*() {
    const named = yield* repo.findJobsByName(raw)
    const running = named.filter((job) => job.status !== "exited")
    if (running.length > 1) {
      return yield* new StateConflict({
        message: `${running.length} running jobs are named ${raw} (${
          running.map((job) => `${job.id} in ${job.cell_id}`).join(", ")
        }): give the job's id`
      })
    }
    const chosen = running[0] ?? named[0]
    if (chosen === undefined) {
      return yield* new UnknownEntity({ message: `no job named ${raw}: list jobs with \`planter job ls\`` })
    }
    return chosen.id
  }).pipe(Effect.withSpan("JobRefs.resolve", { attributes: { ref: raw } }))
}
