import { Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { JobId } from "../rpc/Ids.js"
import { Job } from "../rpc/Models.js"
import { Cells } from "../services/Cells.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { JobRegistry } from "../services/JobRegistry.js"
import { JobSupervisor } from "../services/JobSupervisor.js"
import type { ProcessEntry } from "../services/ProcessProbe.js"
import { isRunning, ProcessProbe } from "../services/ProcessProbe.js"
import { StateRepository } from "../services/StateRepository.js"
import { finishEvent } from "./JobEnds.js"
import { jobFiles, readLauncherExit } from "./JobFiles.js"

/** The topmost of a job's marked processes: its leader (the launcher, for a sandboxed job). */
const topmost = (marked: ReadonlyArray<ProcessEntry>) => {
  const pids = new Set(marked.map((entry) => entry.pid))
  return marked.find((entry) => !entry.zombie && !pids.has(entry.ppid))
}

/** Job ids named by the entries of `dir` (`job-….status`, `job-…` dirs, `job-….sb`). */
const jobIdsIn = (dir: string) => {
  try {
    return fs.readdirSync(dir).map((name) => ({ name, id: name.replace(/\.(status|sb)$/, "") }))
  } catch {
    return []
  }
}

/**
 * Runs once at start, before the socket opens, and leaves the state as if
 * the previous daemon had stopped cleanly: jobs still alive (same pid and
 * start time; a row without a start time is never adopted by its pid) are adopted; `starting` rows are resolved (adopt the process
 * if one was started, else finish the row); jobs that ended while no daemon
 * ran get their real exit where the launcher recorded it, else `lost`;
 * cell removals a crash interrupted are finished; leftovers of jobs that no
 * longer run (TMPDIRs, status files, profiles) are removed.
 */
export const reconcile = Effect.gen(function*() {
  const config = yield* DaemonConfig
  const repo = yield* StateRepository
  const probe = yield* ProcessProbe
  const supervisor = yield* JobSupervisor
  const registry = yield* JobRegistry
  const cells = yield* Cells
  const paths = statePaths(config.stateDir)
  const summary = { adopted: 0, exited: 0, lost: 0, removedCells: 0, leftovers: 0 }
  const named: { adopted: Array<JobId>; lost: Array<JobId> } = { adopted: [], lost: [] }

  const finish = (job: Job, note: string) => {
    const exit = readLauncherExit(jobFiles(paths, job.id))
    const reason = exit === undefined ? "lost" : "exited"
    summary[reason === "lost" ? "lost" : "exited"]++
    if (reason === "lost") named.lost.push(job.id)
    return repo.finishJob(
      job.id,
      {
        exit_code: exit?.code ?? null,
        signal: exit?.signal ?? null,
        termination_reason: reason,
        finished_at_ms: Date.now()
      },
      finishEvent(job, reason, {
        exit_code: exit?.code ?? null,
        signal: exit?.signal ?? null,
        note: exit === undefined ? note : "the job ended while no daemon ran"
      })
    )
  }

  const adopt = (job: Job) =>
    Effect.gen(function*() {
      summary.adopted++
      named.adopted.push(job.id)
      yield* repo.appendEvent({ kind: "job_adopted", cell_id: job.cell_id, job_id: job.id, detail: { pid: job.pid } })
      yield* supervisor.adopt(job)
    })

  for (const job of yield* repo.listUnfinishedJobs) {
    if (job.status === "starting") {
      // The previous daemon stopped between recording the job and recording its pid.
      const leader = topmost(yield* probe.markedBy(job.id))
      if (leader === undefined) {
        yield* finish(job, "the daemon stopped before the job's process was recorded")
        continue
      }
      const process = { pid: leader.pid, pid_start_time: leader.startTime, sandbox: job.sandbox }
      yield* repo.markJobRunning(job.id, process)
      yield* adopt(new Job({ ...job, ...process, status: "running" }))
      continue
    }
    // A pid alone proves nothing: without the start time recorded with it, a
    // live process under that pid may be a stranger that reused it.
    if (job.pid !== null && job.pid_start_time === null) {
      yield* finish(
        job,
        `no process start time was recorded with pid ${job.pid}, so nothing proves a process under that pid is the job: not adopted, never signalled`
      )
    } else if (job.pid !== null && isRunning(yield* probe.entry(job.pid), job.pid_start_time)) yield* adopt(job)
    else yield* finish(job, "the job's process was gone when the daemon started")
  }

  for (const cell of yield* repo.listRemovingCells) {
    yield* cells.finishRemoval(cell)
    summary.removedCells++
  }

  // Whatever belongs to no running job is a leftover of one that ended.
  for (const dir of [paths.tmp, paths.run, paths.sandbox]) {
    for (const { id, name } of jobIdsIn(dir)) {
      if (Option.isSome(registry.get(id as JobId))) continue
      yield* Effect.sync(() => fs.rmSync(path.join(dir, name), { recursive: true, force: true }))
      summary.leftovers++
    }
  }

  const ids = (
    list: ReadonlyArray<JobId>
  ) => (list.length === 0 ? "" : ` (${list.slice(0, 20).join(", ")}${list.length > 20 ? ", …" : ""})`)
  yield* Effect.annotateCurrentSpan({
    "planter.reconcile.adopted": summary.adopted,
    "planter.reconcile.exited": summary.exited,
    "planter.reconcile.lost": summary.lost,
    "planter.reconcile.leftovers": summary.leftovers
  })
  yield* Effect.logInfo(
    `reconciled: ${summary.adopted} job(s) adopted${
      ids(named.adopted)
    }, ${summary.exited} ended while no daemon ran, ${summary.lost} lost${
      ids(named.lost)
    }, ${summary.removedCells} interrupted cell removal(s) finished, ${summary.leftovers} leftover file(s) removed`
  ).pipe(
    Effect.annotateLogs({ "planter.jobs.adopted": named.adopted.join(","), "planter.jobs.lost": named.lost.join(",") })
  )
}).pipe(Effect.withSpan("Reconciler.reconcile"))

export const layer = Layer.effectDiscard(reconcile)
