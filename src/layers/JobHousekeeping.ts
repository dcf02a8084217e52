import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { CellId } from "../rpc/Ids.js"
import type { Job } from "../rpc/Models.js"
import { PruneResult } from "../rpc/Models.js"
import { statePaths } from "../services/DaemonConfig.js"
import { StateConflict } from "../services/DomainErrors.js"
import { marksFileName } from "../services/LogReader.js"
import type { StateRepositoryShape } from "../services/StateRepository.js"
import { jobFiles } from "./JobFiles.js"

/** Rows per prune batch: bounded work per transaction, however many jobs qualify. */
const PRUNE_BATCH = 500

/** Removes a file, answering the bytes it held (0 when it was not there). */
const unlinkCounting = (file: string): number => {
  try {
    const size = fs.statSync(file).size
    fs.unlinkSync(file)
    return size
  } catch {
    return 0
  }
}

/**
 * Removing finished jobs: their record first (so nothing ever points at a
 * log that is gone), then their log files and status file. A running job
 * is never removed.
 */
export const makeJobHousekeeping = (repo: StateRepositoryShape, stateDir: string) => {
  const paths = statePaths(stateDir)

  const removeFiles = (job: Job) =>
    Effect.sync(() => {
      const files = jobFiles(paths, job.id)
      // The (offset, time) marks behind `logs --timestamps` go with the logs they describe.
      const marks = (["stdout", "stderr"] as const).map((stream) =>
        path.join(paths.logs, marksFileName(job.id, stream))
      )
      return unlinkCounting(files.stdout) + unlinkCounting(files.stderr) + unlinkCounting(files.status) +
        marks.reduce((bytes, file) => bytes + unlinkCounting(file), 0)
    })

  const removeOne = (job: Job, detail: Record<string, unknown>, uid: number | null) =>
    Effect.gen(function*() {
      const deleted = yield* repo.deleteFinishedJob(job.id, {
        kind: "job_removed",
        cell_id: job.cell_id,
        job_id: job.id,
        detail,
        uid
      })
      return deleted ? yield* removeFiles(job) : null
    })

  /** `planter job rm JOB`: a finished job's record and logs. */
  const remove = Effect.fn("JobHousekeeping.remove")(
    function*(job: Job, caller: { readonly uid: number; readonly pid: number | null }) {
      if (job.status !== "exited") {
        return yield* new StateConflict({
          message:
            `job ${job.id} is ${job.status}: only a finished job can be removed; kill it first (\`planter job kill ${
              job.name ?? job.id
            }\`)`
        })
      }
      const freed = yield* removeOne(job, { by: "job rm" }, caller.uid)
      if (freed === null) {
        return yield* new StateConflict({ message: `job ${job.id} was removed meanwhile` })
      }
      return job
    }
  )

  /** Finished jobs that ended at or before `finishedBeforeMs` (of one cell, of one owner), in bounded batches. */
  const prune = Effect.fn("JobHousekeeping.prune")(function*(query: {
    readonly finishedBeforeMs: number
    readonly cellId: CellId | null
    readonly ownerUid: number | null
    readonly by: string
    readonly uid: number | null
  }) {
    const removed: Array<string> = []
    let freed = 0
    for (;;) {
      const batch = yield* repo.finishedJobsBefore({ ...query, limit: PRUNE_BATCH })
      for (const job of batch) {
        const bytes = yield* removeOne(job, { by: query.by }, query.uid)
        if (bytes === null) continue
        removed.push(job.id)
        freed += bytes
      }
      if (batch.length < PRUNE_BATCH) break
    }
    return new PruneResult({ removed, freed_bytes: freed })
  })

  return { remove, prune }
}
