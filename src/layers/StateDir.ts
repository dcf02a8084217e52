import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import { statePaths } from "../services/DaemonConfig.js"

/** The state dir cannot be used safely; the message says what is wrong and how to fix it. */
export class StateDirError extends Schema.TaggedError<StateDirError>()("StateDirError", {
  message: Schema.String
}) {}

const modeOf = (mode: number) => `0${(mode & 0o777).toString(8)}`

/**
 * Another user who can write the state dir could swap the database or a
 * cell dir for a symlink; one who owns it could read everything. Refused,
 * with the command that fixes it.
 */
const checkOwnership = (dir: string, stat: fs.Stats): StateDirError | undefined => {
  const uid = process.getuid?.()
  if (uid !== undefined && stat.uid !== uid) {
    return new StateDirError({
      message:
        `the state dir ${dir} is owned by uid ${stat.uid}, not by the daemon's user (uid ${uid}): run planterd as its owner, or give it to this user with \`chown -R ${uid} ${dir}\``
    })
  }
  if ((stat.mode & 0o022) !== 0) {
    return new StateDirError({
      message: `the state dir ${dir} is writable by ${(stat.mode & 0o002) !== 0 ? "every user" : "its group"} (mode ${
        modeOf(stat.mode)
      }): make it private with \`chmod 700 ${dir}\``
    })
  }
  return undefined
}

/**
 * Prepares the state dir before anything opens it: creates it and its parts
 * 0700, refuses one that others can write or that another user owns, and
 * makes the database files 0600 whatever the umask (SQLite creates its
 * -wal and -shm files with the database file's mode, so creating that one
 * private covers all three).
 */
export const prepareStateDir = Effect.fn("StateDir.prepare")(function*(stateDir: string) {
  const paths = statePaths(stateDir)
  yield* Effect.try({
    try: () => fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 }),
    catch: (error) =>
      new StateDirError({ message: `cannot create the state dir ${stateDir}: ${(error as Error).message}` })
  })
  const problem = checkOwnership(stateDir, fs.statSync(stateDir))
  if (problem !== undefined) return yield* problem
  yield* Effect.try({
    try: () => {
      for (const dir of [paths.cells, paths.logs, paths.tmp, paths.run]) {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
        fs.chmodSync(dir, 0o700)
      }
      fs.closeSync(fs.openSync(paths.database, "a", 0o600))
      for (const file of [paths.database, `${paths.database}-wal`, `${paths.database}-shm`]) {
        if (fs.existsSync(file)) fs.chmodSync(file, 0o600)
      }
    },
    catch: (error) =>
      new StateDirError({ message: `cannot prepare the state dir ${stateDir}: ${(error as Error).message}` })
  })
})

/** Said once at start: what a root daemon means for its jobs. */
export const warnIfRoot = Effect.gen(function*() {
  if (process.getuid?.() !== 0) return
  yield* Effect.logWarning(
    "planterd runs as root: sandboxed jobs run as uid 0 inside a user namespace with every capability dropped, but can read what root can read among the paths they see (/etc, --read grants); unsandboxed jobs (sandbox mode disabled, or a permissive fallback) run as root with full privilege. Prefer a dedicated user for the daemon"
  )
})
