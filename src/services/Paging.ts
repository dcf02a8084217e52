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
  const count = rowsWithinBytes(rows, Math.min(limit, rows.length))
  const items = count < rows.length ? rows.slice(0, count) : rows
  return { items, next: count < rows.length ? cursorOf(items[items.length - 1]!) : null }
}

/**
 * The most bytes of rows one page answers. A client takes frames of at most
 * MAX_RESPONSE_FRAME_BYTES (5 MiB) and refuses a larger one (the connection is
 * lost); a page always holds at least one row, and one job's record is at most
 * what one request could carry (3 MiB of argv and env). 1000 jobs of a 6 KB
 * `sh -c` script each were 6 MB: `job ls --all` failed as if the daemon had
 * crashed. A page cut short by size still says where the next one starts.
 */
export const MAX_PAGE_BYTES = 2 * 1024 * 1024

/** Roughly the bytes `value` takes encoded (msgpack): its strings' UTF-8 bytes, and a few bytes for each value. */
export const encodedBytes = (value: unknown): number => {
  if (typeof value === "string") return Buffer.byteLength(value) + 5
  if (value === null || typeof value !== "object") return 9
  if (value instanceof Uint8Array) return value.length + 5
  let total = 5
  if (Array.isArray(value)) {
    for (const item of value) total += encodedBytes(item)
    return total
  }
  for (const key in value) total += Buffer.byteLength(key) + 5 + encodedBytes((value as Record<string, unknown>)[key])
  return total
}

/** How many of the first `upTo` rows (at least one, when there is one) fit in `budget` bytes. */
export const rowsWithinBytes = (rows: ReadonlyArray<unknown>, upTo: number, budget = MAX_PAGE_BYTES): number => {
  let total = 0
  for (let i = 0; i < upTo; i++) {
    total += encodedBytes(rows[i])
    if (total > budget && i > 0) return i
  }
  return upTo
}

/**
 * `rows` as one answer the client can take: all of them, or (`cut`) the first ones within MAX_PAGE_BYTES, the
 * next answer going on after the last of them.
 */
export const cutToPageBytes = <A>(
  rows: ReadonlyArray<A>
): { readonly rows: ReadonlyArray<A>; readonly cut: boolean } => {
  const count = rowsWithinBytes(rows, rows.length)
  return count < rows.length ? { rows: rows.slice(0, count), cut: true } : { rows, cut: false }
}
