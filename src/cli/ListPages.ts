import { Effect, Option } from "effect"
import { MAX_LIST_PAGE } from "../rpc/Rpcs.js"
import { usageError, write } from "./Output.js"

/** What `--limit N` / `--all` ask for: the first `count` rows, or every row. */
export type ListSpan = { readonly _tag: "first"; readonly count: number } | { readonly _tag: "all" }

/** `--limit N` and `--all` of a list command: a usage error when both are given or N is not a positive count. */
export const listSpan = (limit: Option.Option<number>, all: boolean, defaultCount: number) =>
  Effect.gen(function*() {
    if (all && Option.isSome(limit)) return yield* usageError("--limit and --all exclude each other: give one")
    if (all) return { _tag: "all" } as ListSpan
    const count = Option.getOrElse(limit, () => defaultCount)
    if (!Number.isSafeInteger(count) || count < 1) {
      return yield* usageError(`--limit ${count}: expected a whole number of rows, 1 or more`)
    }
    return { _tag: "first", count } as ListSpan
  })

/** One page of a list: its rows and the cursor of the next page (null: the last). */
export interface Page<A> {
  readonly rows: ReadonlyArray<A>
  readonly next: string | null
}

/**
 * The rows a span asks for, a page at a time: pages of up to MAX_LIST_PAGE
 * (fewer for the last of a `--limit`), each handed to `onPage` as it comes,
 * so `--all` over 100 000 jobs holds one page in memory. Answers whether
 * rows were left out (a `--limit` that stopped before the end).
 *
 * A plain loop of requests rather than a Stream of pages (`allPages`): the
 * same requests in the same order, without running Stream's channel
 * machinery cold in a CLI process that lists one page (~3 ms a list).
 */
export const forEachPage = <A, E, R>(
  span: ListSpan,
  fetch: (after: string | null, limit: number) => Effect.Effect<Page<A>, E, R>,
  onPage: (rows: ReadonlyArray<A>, first: boolean) => Effect.Effect<void, never, R>
): Effect.Effect<boolean, E, R> =>
  Effect.gen(function*() {
    let left = span._tag === "all" ? Infinity : span.count
    let after: string | null = null
    for (let first = true;; first = false) {
      const page: Page<A> = yield* fetch(after, Math.min(left, MAX_LIST_PAGE))
      left -= page.rows.length
      yield* onPage(page.rows, first)
      if (page.next === null) return false
      if (left <= 0) return true
      after = page.next
    }
  })

/**
 * Writes a JSON array one page at a time, formatted exactly as
 * `JSON.stringify(rows, null, 2)` would be: one document, never the whole
 * list in memory.
 */
export const jsonArrayWriter = () => {
  let count = 0
  const indent = (text: string) => text.replace(/\n/g, "\n  ")
  return {
    page: (rows: ReadonlyArray<unknown>) =>
      rows.length === 0
        ? Effect.void
        : write(
          process.stdout,
          rows.map((row) => `${count++ === 0 ? "[\n  " : ",\n  "}${indent(JSON.stringify(row, null, 2))}`).join("")
        ),
    end: () => write(process.stdout, count === 0 ? "[]\n" : "\n]\n")
  }
}
