import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import * as path from "node:path"
import {
  envOption,
  forceOption,
  maxLogOption,
  maxRssOption,
  networkOption,
  parseEnv,
  parseLimitFlags,
  timeoutOption,
  withClient
} from "./Global.js"
import { forEachPage, jsonArrayWriter, listSpan } from "./ListPages.js"
import { cellDetails, cellRows, encodeCell, printJson, printLine, write } from "./Output.js"

export const createCell = (name: string) =>
  Command.make(name, {
    name: Options.text("name").pipe(Options.withDescription("the cell's name, unique")),
    env: envOption,
    read: Options.text("read").pipe(
      Options.withDescription("extra path the cell's jobs may read (repeatable)"),
      Options.repeated
    ),
    network: networkOption,
    timeout: timeoutOption,
    maxRss: maxRssOption,
    maxLog: maxLogOption
  }, (options) =>
    withClient((client, json) =>
      Effect.gen(function*() {
        const env = yield* parseEnv(options.env)
        const limits = yield* parseLimitFlags(options)
        const cell = yield* client.CellCreate({
          limits,
          name: options.name,
          env,
          read_paths: options.read.map((p) => path.resolve(p)),
          network: Option.getOrElse(options.network, () => "allow" as const)
        })
        if (json) return yield* printJson(encodeCell(cell))
        yield* printLine(`created cell ${cell.name} (${cell.id}) in ${cell.dir}`)
      })
    )).pipe(Command.withDescription("Create a cell: a directory with its own env and sandbox policy"))

const cellLs = Command.make("ls", {
  limit: Options.integer("limit").pipe(Options.withDescription("the first N cells (default: all)"), Options.optional)
}, ({ limit }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      // Cells are few: all of them unless --limit, still fetched a page at a time.
      const span = yield* listSpan(limit, Option.isNone(limit), 1)
      const fetch = (after: string | null, pageLimit: number) =>
        Effect.map(client.CellList({ after, limit: pageLimit }), (page) => ({ rows: page.cells, next: page.next }))
      if (json) {
        const out = jsonArrayWriter()
        yield* forEachPage(span, fetch, (cells) => out.page(cells.map((cell) => encodeCell(cell))))
        return yield* out.end()
      }
      let shown = 0
      const more = yield* forEachPage(span, fetch, (cells, first) => {
        shown += cells.length
        if (cells.length === 0) return Effect.void
        const text = cellRows(cells)
        return printLine(first ? text : text.slice(text.indexOf("\n") + 1))
      })
      if (shown === 0) yield* printLine("no cells: create one with `planter create --name NAME`")
      if (more) yield* write(process.stderr, `(the first ${shown} shown: leave out --limit for every cell)\n`)
    })
  )).pipe(Command.withDescription("List cells, oldest first"))

const cellRm = Command.make("rm", {
  cell: Args.text({ name: "CELL" }),
  force: forceOption.pipe(Options.withDescription("kill the cell's running jobs first"))
}, ({ cell, force }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const removed = yield* client.CellRemove({ cell_id: cell, force })
      if (json) return yield* printJson(encodeCell(removed))
      yield* printLine(`removed cell ${removed.name} (${removed.id})`)
    })
  )).pipe(Command.withDescription("Remove a cell and its directory"))

const cellShow = Command.make(
  "show",
  { cell: Args.text({ name: "CELL" }) },
  ({ cell }) =>
    withClient((client, json) =>
      Effect.gen(function*() {
        const info = yield* client.CellShow({ cell_id: cell })
        if (json) {
          return yield* printJson({
            ...encodeCell(info.cell),
            running_jobs: info.running_jobs,
            total_jobs: info.total_jobs,
            last_job_started_at_ms: info.last_job_started_at_ms
          })
        }
        yield* printLine(cellDetails(info))
      })
    )
).pipe(Command.withDescription("Show a cell: its dir, env, policy, limits and jobs: planter cell show CELL"))

export const cellCommand = Command.make("cell").pipe(
  Command.withDescription("Manage cells"),
  Command.withSubcommands([createCell("create"), cellLs, cellShow, cellRm])
)
