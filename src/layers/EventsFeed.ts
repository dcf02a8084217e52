import { Chunk, Effect, Option, Stream } from "effect"
import { JournalEntry } from "../rpc/Models.js"
import { MAX_EVENTS_PAGE } from "../rpc/Rpcs.js"
import type { JournalFeedShape } from "../services/JournalFeed.js"
import { cutToPageBytes } from "../services/Paging.js"
import type { StateRepository } from "../services/StateRepository.js"
import { onWire } from "./ErrorMapping.js"

export interface EventFilters {
  readonly sinceMs: number | null
  readonly cellId: string | null
  readonly jobId: string | null
}

/**
 * EventsFollow: the journal rows after `afterId` that match `filters`, then
 * every new one as it is written. The follower subscribes to the feed
 * before it reads anything, so a row journaled while it pages through the
 * history still wakes it; each wake reads the rows past its cursor from the
 * database, a bounded page at a time (a slow client holds back the reads,
 * not the writers).
 */
export const followEvents = (
  repo: StateRepository["Type"],
  feed: JournalFeedShape,
  filters: EventFilters,
  afterId: number | null
) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const wakes = yield* feed.subscribe
    let cursor = afterId
    /** Everything past the cursor now, page by page. */
    const drain = Stream.paginateChunkEffect(undefined, () =>
      repo.pageEvents({
        afterId: cursor,
        sinceMs: filters.sinceMs,
        cellId: filters.cellId,
        jobId: filters.jobId,
        limit: MAX_EVENTS_PAGE
      }).pipe(
        Effect.map((page) => {
          // A chunk the client can take (a job's argv is in its events); one cut short by size goes on from there.
          const { cut, rows } = cutToPageBytes(page)
          if (rows.length > 0) {
            cursor = rows[rows.length - 1]!.id
          }
          const more = cut || page.length === MAX_EVENTS_PAGE ? Option.some(undefined) : Option.none()
          return [Chunk.fromIterable(rows.map((row) => new JournalEntry({ ...row }))), more] as const
        })
      ))
    return Stream.concat(drain, Stream.flatMap(Stream.fromQueue(wakes), () => drain)).pipe(
      Stream.catchAll((error) => Stream.fromEffect(onWire(Effect.fail(error))))
    )
  }))
