import { Effect } from "effect"
import { InvalidInput } from "./DomainErrors.js"

/**
 * Keyset paging for the job and cell lists. A page ends at a row; the next
 * page starts strictly past that row's sort key, `(time, id)`, so the query
 * is one range seek on an index (migration 0006) whatever the page number,
 * and rows added meanwhile never shift or repeat a page.
 *
 * The cursor travels as text, `<time in ms>.<id>`: opaque to clients, and
 * checked here before it reaches a query.
 */
export interface Cursor {
  readonly atMs: number
  readonly id: string
}

const CURSOR = /^(\d{1,16})\.((?:job|cell)-[a-z0-9]{1,40})$/

export const encodeCursor = (atMs: number, id: string): string => `${atMs}.${id}`

/** The cursor in `text`, or an InvalidInput naming what was wrong with it. */
export const decodeCursor = (text: string, kind: "job" | "cell"): Effect.Effect<Cursor, InvalidInput> => {
  const match = CURSOR.exec(text)
  const atMs = match ? Number(match[1]) : NaN
  if (!match || !Number.isSafeInteger(atMs) || !match[2]!.startsWith(`${kind}-`)) {
    return Effect.fail(
      new InvalidInput({
        message: `invalid cursor ${
          JSON.stringify(text.slice(0, 80))
        }: pass the \`next\` of the previous ${kind} page as \`after\`, unchanged`
      })
    )
  }
  return Effect.succeed({ atMs, id: match[2]! })
}

/**
 * The page of `limit` rows out of `rows` (fetched with `limit + 1`, so one
 * more row says whether another page follows), and the cursor of that next
 * page: null when there is none.
 */
export const pageOf = <A>(rows: ReadonlyArray<A>, limit: number, cursorOf: (row: A) => string) => {
  const items = rows.length > limit ? rows.slice(0, limit) : rows
  return { items, next: rows.length > limit ? cursorOf(items[items.length - 1]!) : null }
}
