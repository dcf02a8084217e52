import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { holdStateDirLockForImport } from "../layers/DaemonLock.js"
import * as LegacyImportLive from "../layers/LegacyImportLive.js"
import * as ProcessProbeLive from "../layers/ProcessProbeLive.js"
import { prepareStateDir } from "../layers/StateDir.js"
import * as StateRepositorySqlite from "../layers/StateRepositorySqlite.js"
import { defaultStateDir, statePaths } from "../services/DaemonConfig.js"
import { InvalidInput } from "../services/DomainErrors.js"
import type { ImportReport } from "../services/LegacyImport.js"
import { countsLine, LegacyImport } from "../services/LegacyImport.js"

const from = Options.directory("from").pipe(
  Options.withDescription("the earlier prototype's state dir (cells/, jobs/, logs/): read only, never changed")
)
const stateDir = Options.directory("state-dir").pipe(
  Options.withDescription("the state dir to import into (default: $PLANTER_STATE_DIR or ~/.planter/state)"),
  Options.optional
)
const dryRun = Options.boolean("dry-run").pipe(
  Options.withDescription("report what would be imported, and change nothing")
)
const json = Options.boolean("json").pipe(Options.withDescription("print exactly one JSON document on stdout"))

const write = (stream: NodeJS.WritableStream, text: string) =>
  Effect.async<void>((resume) => {
    stream.write(text, () => resume(Effect.void))
  })

/** The report for people: the counts, then one line per skipped file and per note. */
export const reportLines = (report: ImportReport): Array<string> => [
  countsLine(report),
  ...report.skipped.map((entry) => `skipped ${entry.path}: ${entry.reason}`),
  ...report.notes.map((entry) => `note ${entry.path}: ${entry.note}`)
]

/** The wire-like codes `planter --json` uses, for the failures this command can have. */
const errorCode = (tag: string | undefined) =>
  tag === "StateDirLocked"
    ? "conflict"
    : tag === "InvalidInput"
    ? "invalid_request"
    : tag === "StateDirError"
    ? "invalid_request"
    : "internal"

/**
 * `planterd import-legacy --from DIR`: imports the prototype's state found
 * in DIR into a state dir that no daemon is using, copying its cell dirs and
 * logs (DIR is only read). A dry run reads the state dir's database through
 * a private copy and writes nothing under it.
 */
export const importLegacy = <E, R>(daemonStateDir: Effect.Effect<Option.Option<string>, E, R>) =>
  Command.make(
    "import-legacy",
    { from, stateDir, dryRun, json },
    (options) =>
      Effect.gen(function*() {
        // `planterd --state-dir DIR import-legacy …` means DIR too: never the default by surprise.
        const parent = yield* daemonStateDir
        if (
          Option.isSome(parent) && Option.isSome(options.stateDir) &&
          path.resolve(parent.value) !== path.resolve(options.stateDir.value)
        ) {
          return yield* new InvalidInput({
            message: `two state dirs given (${parent.value} and ${options.stateDir.value}): give --state-dir once`
          })
        }
        const state = Option.match(Option.orElse(options.stateDir, () => parent), {
          onNone: () => defaultStateDir(),
          onSome: (dir) => path.resolve(dir)
        })
        const source = path.resolve(options.from)
        const report = yield* Effect.scoped(Effect.gen(function*() {
          if (!fs.existsSync(path.join(source, "cells")) && !fs.existsSync(path.join(source, "jobs"))) {
            return yield* new InvalidInput({
              message:
                `${source} holds no prototype state: expected cells/<cell id>/cell.json and jobs/<job id>.json under it`
            })
          }
          if (options.dryRun) {
            if (fs.existsSync(state)) yield* holdStateDirLockForImport(state, { dryRun: true })
          } else {
            yield* prepareStateDir(state)
            yield* holdStateDirLockForImport(state, { dryRun: false })
          }
          const database = statePaths(state).database
          const repository = options.dryRun
            ? StateRepositorySqlite.layerSnapshot(database)
            : StateRepositorySqlite.layer(database)
          const services = LegacyImportLive.layer(state).pipe(
            Layer.provide(Layer.merge(repository, ProcessProbeLive.layer))
          )
          return yield* Effect.flatMap(LegacyImport, (legacy) => legacy.run({ source, dryRun: options.dryRun })).pipe(
            Effect.provide(services)
          )
        }))
        if (options.json) yield* write(process.stdout, `${JSON.stringify(report, null, 2)}\n`)
        else yield* write(process.stdout, `${reportLines(report).join("\n")}\n`)
        return 0
      }).pipe(
        Effect.catchAll((error: unknown) => {
          const tagged = error as { _tag?: string; message?: string }
          const message = tagged.message ?? String(error)
          return Effect.as(
            options.json
              ? write(
                process.stdout,
                `${JSON.stringify({ error: { code: errorCode(tagged._tag), message } }, null, 2)}\n`
              )
              : write(process.stderr, `planterd import-legacy: ${message}\n`),
            1
          )
        })
      )
  ).pipe(
    Command.withDescription(
      "Import the earlier prototype's JSON state (cells, jobs, logs) from DIR into a state dir no daemon is using; DIR is never changed"
    )
  )
