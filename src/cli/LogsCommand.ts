import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect } from "effect"
import type { PlanterClientShape } from "../rpc/client.js"
import type { LogStream } from "../rpc/Models.js"
import { MAX_LOG_CHUNK_BYTES } from "../rpc/Rpcs.js"
import { withClient } from "./Global.js"
import { printJson, usageError, write } from "./Output.js"

const FOLLOW_WAIT_MS = 30_000

/**
 * Copies a job's log from `offset` to `sink`. Following, it long-polls the
 * daemon (which answers as soon as bytes arrive) until the job has finished
 * and everything is read.
 */
export const copyLog = (
  client: PlanterClientShape,
  jobId: string,
  stream: LogStream,
  offset: number,
  follow: boolean,
  sink: (data: Uint8Array) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    let next = offset
    for (;;) {
      const chunk = yield* client.LogsRead({
        job_id: jobId,
        stream,
        offset: next,
        max_bytes: MAX_LOG_CHUNK_BYTES,
        follow,
        wait_ms: follow ? FOLLOW_WAIT_MS : 0
      })
      yield* sink(chunk.data)
      next = chunk.offset
      if (chunk.complete || (!follow && chunk.eof)) return { offset: next, complete: chunk.complete }
    }
  })

export const logs = Command.make("logs", {
  job: Args.text({ name: "JOB" }),
  follow: Options.boolean("follow").pipe(Options.withAlias("f"), Options.withDescription("keep reading until the job has finished")),
  stderr: Options.boolean("stderr").pipe(Options.withDescription("read stderr instead of stdout")),
  offset: Options.integer("offset").pipe(Options.withDescription("start at this byte"), Options.withDefault(0))
}, (options) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      if (options.offset < 0) return yield* usageError(`--offset ${options.offset}: give 0 or more bytes`)
      const stream: LogStream = options.stderr ? "stderr" : "stdout"
      if (!json) {
        yield* copyLog(client, options.job, stream, options.offset, options.follow, (data) => write(process.stdout, data))
        return
      }
      const parts: Array<Uint8Array> = []
      const end = yield* copyLog(client, options.job, stream, options.offset, options.follow, (data) => Effect.sync(() => parts.push(data)))
      yield* printJson({
        job_id: options.job,
        stream,
        offset: options.offset,
        next_offset: end.offset,
        complete: end.complete,
        data: Buffer.concat(parts).toString("utf8")
      })
    })
  )).pipe(Command.withDescription("Print a job's output, from an offset, optionally following it"))

