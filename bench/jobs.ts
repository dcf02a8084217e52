/** Starting a job and waiting for its end through the typed client: shared by every bench group. */
import { Effect } from "effect"
import type { PlanterClientShape } from "../src/rpc/client.js"

export const runJob = (client: PlanterClientShape, cellId: string, argv: readonly [string, ...Array<string>]) =>
  client.JobRun({ cell_id: cellId, argv, env: {}, cwd: null, network: null })

/**
 * Waits until the job has finished, by following its (empty) stderr log:
 * the daemon answers `complete` once the job is over and recorded.
 */
export const awaitJobEnd = (client: PlanterClientShape, jobId: string) =>
  Effect.gen(function*() {
    let offset = 0
    for (;;) {
      const chunk = yield* client.LogsRead({
        job_id: jobId,
        stream: "stderr",
        offset,
        max_bytes: 65536,
        follow: true,
        wait_ms: 30_000
      })
      offset = chunk.offset
      if (chunk.complete) return
    }
  })
