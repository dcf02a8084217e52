import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import type { PlanterClientShape } from "../rpc/client.js"
import type { JournalEntry } from "../rpc/Models.js"
import { type EventsFollowPayload, MAX_EVENTS_PAGE } from "../rpc/Rpcs.js"
import { withClient } from "./Global.js"
import { printJson, printLine, table, usageError, write } from "./Output.js"

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `30s`, `5m`, `2h`, `7d` → milliseconds, or undefined. */
export const parseDurationMs = (text: string): number | undefined => {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim())
  return match ? Number(match[1]) * UNITS[match[2]!]! : undefined
}

const who = (event: JournalEntry) =>
  event.uid === null ? "daemon" : `uid ${event.uid}${event.pid === null ? "" : ` pid ${event.pid}`}`

const what = (event: JournalEntry) => {
  const detail = event.detail as Record<string, unknown>
  const parts: Array<string> = []
  if (typeof detail.rpc === "string") parts.push(detail.rpc)
  if (typeof detail.outcome === "string") parts.push(detail.outcome)
  if (Array.isArray(detail.argv)) parts.push(detail.argv.map(String).join(" "))
  if (typeof detail.name === "string") parts.push(`name=${detail.name}`)
  if (event.kind === "denied" && typeof detail.message === "string") parts.push(`— ${detail.message}`)
  if (typeof detail.reason === "string") parts.push(detail.reason)
  return parts.join(" ")
}

const row = (event: JournalEntry) => [
  String(event.id),
  new Date(event.at_ms).toISOString(),
  event.kind,
  who(event),
  event.cell_id ?? "-",
  event.job_id ?? "-",
  what(event)
]

/**
 * Prints each event the daemon pushes, until it ends the stream or the user
 * stops us. Read as a mailbox rather than a Stream: the same messages,
 * without Stream's code in the CLI bundle.
 */
const follow = (client: PlanterClientShape, json: boolean, payload: typeof EventsFollowPayload.Type) =>
  Effect.scoped(Effect.gen(function*() {
    const feed = yield* client.EventsFollow(payload, { asMailbox: true })
    while (true) {
      const [events, done] = yield* feed.takeAll
      for (const event of events) {
        yield* json ? write(process.stdout, `${JSON.stringify({ ...event })}\n`) : printLine(row(event).join("  "))
      }
      if (done) return
    }
  }))

/**
 * `planter events`: the journal, oldest first — what happened to which
 * cell or job, and who asked (uid and pid). Pages through the daemon's
 * bounded EventsList until `--limit` rows are printed.
 */
export const events = Command.make("events", {
  since: Options.text("since").pipe(
    Options.withDescription("only events of the last D (30s, 5m, 2h, 7d)"),
    Options.optional
  ),
  job: Options.text("job").pipe(Options.withDescription("only this job's events"), Options.optional),
  cell: Options.text("cell").pipe(Options.withDescription("only this cell's events (id or name)"), Options.optional),
  limit: Options.integer("limit").pipe(
    Options.withDescription("at most N events (default 1000; -f prints every event since --since)"),
    Options.withDefault(1000)
  ),
  follow: Options.boolean("follow").pipe(
    Options.withAlias("f"),
    Options.withDescription(
      "then keep printing new events as the daemon journals them (from now, or from --since); with --json one JSON object per line"
    )
  )
}, (options) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      let sinceMs: number | null = null
      if (Option.isSome(options.since)) {
        const ms = parseDurationMs(options.since.value)
        if (ms === undefined) {
          return yield* usageError(`--since ${options.since.value}: expected a duration such as 30s, 5m, 2h or 7d`)
        }
        sinceMs = Math.max(0, Date.now() - ms)
      }
      if (options.limit < 1) return yield* usageError("--limit must be 1 or more")
      if (options.follow) {
        // Pushed by the daemon as it journals them: the history since --since (or from now), then each new event.
        return yield* follow(client, json, {
          since_ms: sinceMs ?? Date.now(),
          after_id: null,
          job_id: Option.getOrNull(options.job),
          cell_id: Option.getOrNull(options.cell)
        })
      }
      const rows: Array<JournalEntry> = []
      let afterId: number | null = null
      while (rows.length < options.limit) {
        const page: { readonly events: ReadonlyArray<JournalEntry>; readonly next_id: number | null } = yield* client
          .EventsList({
            since_ms: sinceMs,
            after_id: afterId,
            job_id: Option.getOrNull(options.job),
            cell_id: Option.getOrNull(options.cell),
            limit: Math.min(MAX_EVENTS_PAGE, options.limit - rows.length)
          })
        rows.push(...page.events)
        if (page.next_id === null) break
        afterId = page.next_id
      }
      if (json) return yield* printJson(rows.map((event) => ({ ...event })))
      if (rows.length === 0) return yield* printLine("no events")
      yield* printLine(table(
        ["ID", "TIME", "KIND", "WHO", "CELL", "JOB", "WHAT"],
        rows.map(row)
      ))
    })
  )).pipe(
    Command.withDescription("Show the events journal: who did what, and when (planter events --since 1h; -f to follow)")
  )
