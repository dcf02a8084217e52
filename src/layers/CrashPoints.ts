import { Effect } from "effect"

/**
 * Test-only fault injection: with `PLANTER_TEST_CRASH_AT=<point>` in its
 * environment, the daemon SIGKILLs itself when it reaches that point, so
 * tests can prove that a crash there leaves no orphan and no ghost.
 * Without the variable this is a no-op.
 */
const crashAt = process.env.PLANTER_TEST_CRASH_AT

export type CrashPoint = "job-recorded" | "job-spawned" | "job-running" | "cell-marked-removing"

export const crashPoint = (point: CrashPoint): Effect.Effect<void> =>
  crashAt === point
    ? Effect.sync(() => {
      process.kill(process.pid, "SIGKILL")
    }).pipe(Effect.zipRight(Effect.never))
    : Effect.void
