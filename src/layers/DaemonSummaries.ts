import { Effect, Layer } from "effect"
import { PLANTER_VERSION } from "../rpc/Version.js"
import type { AuthzPolicy } from "../services/Authz.js"
import { DaemonConfig } from "../services/DaemonConfig.js"
import { JobRegistry } from "../services/JobRegistry.js"
import { SandboxRunner } from "../services/SandboxRunner.js"

/** The policy in one phrase: who besides the daemon's user may use the socket, and as what. */
export const describePolicy = (policy: AuthzPolicy): string => {
  if (policy.strict) return "strict (only the daemon's uid)"
  const grants = [
    ...policy.uids.map((grant) => `uid ${grant.label}:${grant.role}`),
    ...policy.groups.map((grant) => `group ${grant.label}:${grant.role}`)
  ]
  return grants.length === 0 ? "the daemon's uid and root only" : `the daemon's uid and root, ${grants.join(", ")}`
}

/**
 * Logs, once the socket listens, where the daemon runs and how; and when
 * it stops, before its jobs are ended, what it is about to kill or leave
 * for the next daemon to adopt. Built last, so its release runs first.
 */
export const layer = Layer.scopedDiscard(Effect.gen(function*() {
  const config = yield* DaemonConfig
  const sandbox = yield* SandboxRunner
  const registry = yield* JobRegistry
  const backend = sandbox.status.available
    ? sandbox.status.backend
    : `none (${sandbox.status.unavailableReason ?? "disabled"})`
  yield* Effect.logInfo(`planterd ${PLANTER_VERSION} listening on ${config.socketPath}`).pipe(
    Effect.annotateLogs({
      "planter.state_dir": config.stateDir,
      "planter.socket": config.socketPath,
      "planter.sandbox.mode": sandbox.status.mode,
      "planter.sandbox.backend": backend,
      "planter.policy": describePolicy(config.authz),
      "planter.keep_jobs": config.keepJobs
    })
  )
  yield* Effect.logInfo(
    `state dir ${config.stateDir}, sandbox ${sandbox.status.mode} with backend ${backend}, socket open to ${
      describePolicy(config.authz)
    }`
  )
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const running = (yield* registry.all).map((entry) => entry.job.id)
      const list = running.length === 0 ? "" : `: ${running.join(", ")}`
      yield* Effect.logInfo(
        config.keepJobs
          ? `stopping: leaving ${running.length} running job(s) for the next daemon to adopt${list}`
          : `stopping: killing ${running.length} running job(s) with reason daemon_shutdown${list}`
      ).pipe(Effect.annotateLogs({ "planter.jobs.running": running.length, "planter.keep_jobs": config.keepJobs }))
    })
  )
}))
