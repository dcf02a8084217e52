import { Effect, Option, Stream } from "effect"

/** A page of a paged list: its rows and the cursor of the page after it (null: the last page). */
export interface Paged {
  readonly next: string | null
}

/**
 * Every page of a paged list (JobList, CellList), one request after the
 * other: `fetch(after)` asks for the page that follows the cursor `after`
 * (null: the first page). Pages are pulled as they are consumed, so a
 * caller that prints as it goes holds one page at a time.
 *
 *   allPages((after) => client.JobList({ status: "running", after, limit: 1000 }))
 */
export const allPages = <P extends Paged, E, R>(
  fetch: (after: string | null) => Effect.Effect<P, E, R>
): Stream.Stream<P, E, R> =>
  Stream.paginateEffect(
    null as string | null,
    (after) =>
      Effect.map(fetch(after), (page): readonly [P, Option.Option<string | null>] => [
        page,
        page.next === null ? Option.none() : Option.some(page.next)
      ])
  )
