import * as Command from "@effect/cli/Command"
import { Effect } from "effect"
import { PROTOCOL_VERSION } from "../rpc/client.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import { cellCommand, createCell } from "./CellCommands.js"
import { debugCommand } from "./DebugCommand.js"
import { events } from "./EventsCommand.js"
import { planter, withClient } from "./Global.js"
import { jobCommand, run, top } from "./JobCommands.js"
import { logs } from "./LogsCommand.js"
import { printJson, printLine } from "./Output.js"

const version = Command.make("version", {}, () =>
  // The daemon's version is the one it answered when the client connected (the protocol check).
  withClient((_client, json, daemon) =>
    Effect.gen(function*() {
      if (json) {
        return yield* printJson({
          client_version: PLANTER_VERSION,
          client_protocol_version: PROTOCOL_VERSION,
          version: daemon.version,
          protocol_version: daemon.protocol_version
        })
      }
      yield* printLine(`planter ${PLANTER_VERSION} (protocol ${PROTOCOL_VERSION})`)
      yield* printLine(`planterd ${daemon.version} (protocol ${daemon.protocol_version})`)
    })
  )).pipe(Command.withDescription("Print the client's and the daemon's versions"))

const health = Command.make("health", {}, () =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const info = yield* client.Health()
      if (json) return yield* printJson(info)
      yield* printLine(
        `planterd ${info.version} ${info.ok ? "ok" : "DEGRADED"}, pid ${info.pid}, up ${
          Math.round(info.uptime_ms / 1000)
        }s`
      )
      if (info.degraded !== null) yield* printLine(`degraded:  ${info.degraded}`)
      yield* printLine(`socket:    ${info.socket}`)
      yield* printLine(`state dir: ${info.state_dir}`)
      yield* printLine(
        `sandbox:   ${info.sandbox.mode}, backend ${info.sandbox.backend}${
          info.sandbox.available ? "" : ` (unavailable: ${info.sandbox.unavailable_reason ?? "disabled"})`
        }`
      )
      yield* printLine(`running:   ${info.running_jobs} job(s)`)
      if (info.monitor) {
        const m = info.monitor
        yield* printLine(
          `monitor:   every ${m.interval_ms} ms, last tick ${
            m.last_tick_at_ms === null ? "never" : new Date(m.last_tick_at_ms).toISOString()
          }, ${m.ticks} ticks, ${m.restarts} restart(s), ${m.mean_tick_cpu_us} µs CPU per tick (${m.cpu_percent_of_core}% of a core)`
        )
      }
    })
  )).pipe(Command.withDescription("Check that the daemon answers, and how it runs"))

export const command = planter.pipe(
  Command.withDescription("Talk to planterd: cells, jobs and their logs"),
  Command.withSubcommands([
    version,
    health,
    createCell("create"),
    cellCommand,
    run,
    jobCommand,
    top("top"),
    logs,
    events,
    debugCommand
  ])
)
