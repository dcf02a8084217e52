import { Effect, Layer } from "effect"
import * as RpcServerLive from "../rpc/Server.js"
import type { DaemonConfigShape } from "../services/DaemonConfig.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import * as CellsLive from "./CellsLive.js"
import * as JobSupervisorLive from "./JobSupervisorLive.js"
import * as LogReaderLive from "./LogReaderLive.js"
import * as ProcessProbeLive from "./ProcessProbeLive.js"
import * as SandboxRunnerLive from "./SandboxRunnerLive.js"
import { prepareStateDir, warnIfRoot } from "./StateDir.js"
import * as StateRepositorySqlite from "./StateRepositorySqlite.js"

/** The state dir and its parts, private to the daemon's user, checked before anything opens them. */
const stateDirs = (stateDir: string) => Layer.effectDiscard(Effect.zipRight(prepareStateDir(stateDir), warnIfRoot))

/**
 * The whole daemon. Layers are released in reverse order of construction:
 * the socket stops accepting and requests end first, then the supervisor
 * kills job trees (or leaves them for adoption), and SQLite closes last.
 */
export const layer = (config: DaemonConfigShape) => {
  const configLayer = Layer.merge(DaemonConfig.layer(config), stateDirs(config.stateDir))
  const state = StateRepositorySqlite.layer(statePaths(config.stateDir).database)
  const supervisor = JobSupervisorLive.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(SandboxRunnerLive.layer, ProcessProbeLive.layer, state)),
    Layer.provideMerge(configLayer)
  )
  const services = Layer.mergeAll(CellsLive.layer, LogReaderLive.layer).pipe(Layer.provideMerge(supervisor))
  return RpcServerLive.layer(config.socketPath).pipe(Layer.provide(services))
}
