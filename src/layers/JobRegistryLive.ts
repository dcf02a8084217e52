import { Deferred, Effect, Layer, Option, PubSub } from "effect"
import type { JobId } from "../rpc/Ids.js"
import type { RegistryChange, RunningJob } from "../services/JobRegistry.js"
import { JobRegistry } from "../services/JobRegistry.js"

const started = (entry: RunningJob): RegistryChange => ({ _tag: "Started", job: entry.job })

/** The registry in memory: running jobs are exactly the trees this daemon owns now. */
export const make = Effect.gen(function*() {
  const running = new Map<JobId, RunningJob>()
  const changes = yield* PubSub.unbounded<RegistryChange>()

  return JobRegistry.of({
    add: (entry) =>
      Effect.suspend(() => {
        running.set(entry.job.id, entry)
        return PubSub.publish(changes, started(entry))
      }),
    remove: (id, ended) =>
      Effect.suspend(() => {
        running.delete(id)
        return ended === null
          ? Effect.void
          : PubSub.publish(changes, { _tag: "Ended", job: ended } satisfies RegistryChange)
      }),
    get: (id) => Option.fromNullable(running.get(id)),
    all: Effect.sync(() => [...running.values()]),
    count: Effect.sync(() => running.size),
    awaitEnded: (id) =>
      Effect.suspend(() => {
        const entry = running.get(id)
        return entry === undefined ? Effect.void : Effect.asVoid(Deferred.await(entry.ended))
      }),
    subscribe: PubSub.subscribe(changes)
  })
})

export const layer = Layer.effect(JobRegistry, make)
