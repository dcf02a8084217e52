import { Effect, Layer } from "effect"
import * as LimitMonitorLive from "../monitor/LimitMonitorLive.js"
import type { DaemonConfigShape } from "../services/DaemonConfig.js"
import { DaemonConfig, statePaths } from "../services/DaemonConfig.js"
import { JournalFeed } from "../services/JournalFeed.js"
import * as CellsLive from "./CellsLive.js"
import { holdStateDirLock } from "./DaemonLock.js"
import * as DaemonSummaries from "./DaemonSummaries.js"
import { FiberTree, FiberTreeSupervisor } from "./FiberTree.js"
import * as IdleCompaction from "./IdleCompaction.js"
import * as JobRegistryLive from "./JobRegistryLive.js"
import * as JobRetentionLive from "./JobRetentionLive.js"
import * as JobSupervisorLive from "./JobSupervisorLive.js"
import * as LegacyImportLive from "./LegacyImportLive.js"
import * as LogReaderLive from "./LogReaderLive.js"
import * as ProcessProbeLive from "./ProcessProbeLive.js"
import * as ReconcilerLive from "./ReconcilerLive.js"
import * as RpcServerLive from "./RpcServerLive.js"
import * as SandboxRunnerLive from "./SandboxRunnerLive.js"
import * as StartupCompaction from "./StartupCompaction.js"
import { prepareStateDir, warnIfRoot } from "./StateDir.js"
import * as StateRepositorySqlite from "./StateRepositorySqlite.js"

/**
 * The state dir, checked private and locked for this daemon alone before
 * anything opens it; the lock is held until everything else has closed.
 */
const stateDir = (config: DaemonConfigShape) =>
  Layer.scopedDiscard(
    prepareStateDir(config.stateDir).pipe(
      Effect.zipRight(holdStateDirLock(config.stateDir, config.socketPath)),
      Effect.zipRight(warnIfRoot)
    )
  )

/**
 * The whole daemon. Layers are released in reverse order of construction:
 * the socket stops accepting and requests end first, then the supervisor
 * kills job trees (or leaves them for adoption), SQLite closes, and the
 * state dir's lock is released last. Before the socket opens, the earlier
 * prototype's records found in the state dir are imported, then the
 * reconciler runs once.
 */
export const layer = (config: DaemonConfigShape, fiberTree: FiberTreeSupervisor = new FiberTreeSupervisor()) => {
  const configLayer = Layer.mergeAll(DaemonConfig.layer(config), stateDir(config), FiberTree.layer(fiberTree))
  const state = StateRepositorySqlite.layer(statePaths(config.stateDir).database).pipe(
    Layer.provideMerge(JournalFeed.layer)
  )
  const supervisor = JobSupervisorLive.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(SandboxRunnerLive.layer, ProcessProbeLive.layer, state, JobRegistryLive.layer)),
    Layer.provideMerge(configLayer)
  )
  const services = Layer.mergeAll(CellsLive.layer, LogReaderLive.layer, LimitMonitorLive.layer, JobRetentionLive.layer)
    .pipe(
      Layer.provideMerge(supervisor)
    )
  const imported = LegacyImportLive.atStartLayer(config.stateDir).pipe(Layer.provideMerge(services))
  const reconciled = ReconcilerLive.layer.pipe(Layer.provideMerge(imported))
  // Before the socket opens, the heap start-up left behind is compacted (no client waits for it); later,
  // what a burst of work leaves behind is, once the daemon has been quiet for a second.
  const settled = IdleCompaction.layer.pipe(
    Layer.provideMerge(StartupCompaction.layer),
    Layer.provideMerge(reconciled)
  )
  // The summaries come after the socket opens, and say what the stop will do before anything stops.
  return DaemonSummaries.layer.pipe(
    Layer.provide(RpcServerLive.layer(config.socketPath, config.authz, config.stateDir)),
    Layer.provide(settled)
  )
}
