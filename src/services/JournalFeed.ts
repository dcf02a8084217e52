import { Context, Effect, Layer, PubSub, type Queue, type Scope } from "effect"

/**
 * Tells followers of the events journal that it has been written. The
 * repository wakes it on every journal insert; each follower (EventsFollow)
 * then reads the rows past its cursor from the database, so a wake carries
 * no data and a follower that missed several wakes loses nothing: it reads
 * everything new at its next one. Nothing polls.
 */
export interface JournalFeedShape {
  /** Called after a journal row is written (inside its transaction: a reader waits for the commit). */
  readonly wake: Effect.Effect<void>
  /** A queue that receives a wake after each write from now on; it ends with the scope. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<void>, never, Scope.Scope>
}

export class JournalFeed extends Context.Tag("planter/JournalFeed")<JournalFeed, JournalFeedShape>() {
  /**
   * One sliding slot per subscriber: a wake already waiting says all a
   * second one would, so a burst of writes costs a slow follower nothing.
   */
  static layer = Layer.effect(
    JournalFeed,
    Effect.map(PubSub.sliding<void>(1), (pubsub) =>
      JournalFeed.of({
        wake: Effect.asVoid(PubSub.publish(pubsub, undefined)),
        subscribe: PubSub.subscribe(pubsub)
      }))
  )
}
