import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Option } from "effect"
import * as path from "node:path"
import { envOption, forceOption, maxLogOption, maxRssOption, networkOption, parseEnv, parseLimitFlags, timeoutOption, withClient } from "./Global.js"
import { cellDetails, cellRows, encodeCell, printJson, printLine } from "./Output.js"

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

const cellLs = Command.make("ls", {}, () =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const cells = yield* client.CellList()
      if (json) return yield* printJson(cells.map((cell) => encodeCell(cell)))
      yield* printLine(cells.length === 0 ? "no cells: create one with `planter create --name NAME`" : cellRows(cells))
    })
  )).pipe(Command.withDescription("List cells"))

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

const cellShow = Command.make("show", { cell: Args.text({ name: "CELL" }) }, ({ cell }) =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const info = yield* client.CellShow({ cell_id: cell })
      if (json) return yield* printJson({ ...encodeCell(info.cell), running_jobs: info.running_jobs, total_jobs: info.total_jobs, last_job_started_at_ms: info.last_job_started_at_ms })
      yield* printLine(cellDetails(info))
    })
  )).pipe(Command.withDescription("Show a cell: its dir, env, policy, limits and jobs: planter cell show CELL"))

export const cellCommand = Command.make("cell").pipe(
  Command.withDescription("Manage cells"),
  Command.withSubcommands([createCell("create"), cellLs, cellShow, cellRm])
)

