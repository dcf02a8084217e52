import { Effect, Layer } from "effect"
import * as path from "node:path"
import * as StateRepositorySqlite from "../../src/layers/StateRepositorySqlite.js"
import type { CellId, JobId } from "../../src/rpc/Ids.js"
import { Cell, Job, JobCommand, JobSandbox } from "../../src/rpc/Models.js"
import { StateRepository } from "../../src/services/StateRepository.js"
import { makeTempDir } from "./daemon.js"

/**
 * A job that ran `argv` unsandboxed and exited 0 at `atMs`: the record tests seed straight into the repository
 * (thousands of them, without thousands of spawns).
 */
export const finishedJob = (id: string, cellId: string, argv: readonly [string, ...Array<string>], atMs: number) =>
  new Job({
    id: id as JobId,
    cell_id: cellId as CellId,
    command: new JobCommand({ argv, cwd: "/", env: {}, limits: null }),
    status: "exited",
    exit_code: 0,
    signal: null,
    termination_reason: "exited",
    pid: null,
    pid_start_time: null,
    started_at_ms: atMs,
    finished_at_ms: atMs,
    sandbox: new JobSandbox({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null })
  })

/**
 * A fresh state dir holding `cells` (name by id) and `jobs`, written through the repository before any daemon
 * opens it.
 */
export const seededStateDir = async (cells: Readonly<Record<string, string>>, jobs: Iterable<Job>) => {
  const stateDir = makeTempDir()
  await Effect.runPromise(
    Effect.gen(function*() {
      const repo = yield* StateRepository
      for (const [id, name] of Object.entries(cells)) {
        yield* repo.insertCell(
          new Cell({
            id: id as CellId,
            name,
            env: {},
            read_paths: [],
            network: "allow",
            dir: path.join(stateDir, "cells", id),
            created_at_ms: 1
          })
        )
      }
      for (const job of jobs) yield* repo.insertJob(job)
    }).pipe(Effect.provide(Layer.fresh(StateRepositorySqlite.layer(path.join(stateDir, "planter.db")))))
  )
  return stateDir
}
