import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

/** Another live daemon holds the state dir; the message names it and says what to do. */
export class StateDirLocked extends Schema.TaggedError<StateDirLocked>()("StateDirLocked", {
  message: Schema.String
}) {}

/** Who holds the lock, written beside it for the message a second daemon prints. */
const Holder = Schema.parseJson(Schema.Struct({
  pid: Schema.Number,
  socket: Schema.NullOr(Schema.String),
  /** What holds it when it is not the daemon itself (e.g. `planterd import-legacy`). */
  command: Schema.optional(Schema.String)
}))

// The few better-sqlite3 calls the lock needs (the package ships no types here).
interface LockDb {
  exec(sql: string): void
  pragma(sql: string): unknown
  close(): void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new(
  file: string,
  options: { readonly timeout: number; readonly fileMustExist?: boolean }
) => LockDb

const describeHolder = (holderFile: string) => {
  try {
    const holder = Schema.decodeUnknownSync(Holder)(fs.readFileSync(holderFile, "utf8"))
    const what = holder.socket === null ? `pid ${holder.pid}` : `pid ${holder.pid}, socket ${holder.socket}`
    return { text: `${holder.command ?? "planterd"} (${what})`, stop: `kill ${holder.pid}` }
  } catch {
    return { text: "another planterd", stop: "stop it" }
  }
}

interface LockOptions {
  /** Who takes it, as the holder file and a refused second taker name it. */
  readonly holder: { readonly socket: string | null; readonly command?: string }
  /** What the one refused should do, after "stop it first". */
  readonly advice: string
  /**
   * Take the lock only if its file exists, and write nothing (a dry run):
   * no file, no daemon ever ran here, so there is nothing to hold off.
   */
  readonly readOnly: boolean
}

const lockStateDir = (stateDir: string, options: LockOptions) =>
  Effect.gen(function*() {
    const lockFile = path.join(stateDir, "planterd.lock")
    const holderFile = path.join(stateDir, "planterd.pid")
    if (options.readOnly && !fs.existsSync(lockFile)) return
    yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const db = new Database(lockFile, { timeout: 0, fileMustExist: options.readOnly })
          try {
            if (!options.readOnly) fs.chmodSync(lockFile, 0o600)
            db.pragma("locking_mode = EXCLUSIVE")
            db.exec("BEGIN EXCLUSIVE")
            return db
          } catch (error) {
            db.close()
            throw error
          }
        },
        catch: (error) => {
          const busy = (error as { code?: string }).code?.startsWith("SQLITE_BUSY") ?? false
          if (!busy) {
            return new StateDirLocked({ message: `cannot lock the state dir ${stateDir}: ${(error as Error).message}` })
          }
          const holder = describeHolder(holderFile)
          return new StateDirLocked({
            message: `${holder.text} already uses the state dir ${stateDir}: ${holder.stop} first, ${options.advice}`
          })
        }
      }),
      (db) =>
        Effect.sync(() => {
          if (!options.readOnly) fs.rmSync(holderFile, { force: true })
          db.close()
        })
    )
    if (options.readOnly) return
    yield* Effect.sync(() =>
      fs.writeFileSync(holderFile, JSON.stringify({ pid: process.pid, ...options.holder }), { mode: 0o600 })
    )
  })

/**
 * One daemon per state dir. The lock is an exclusive SQLite transaction on
 * `<state>/planterd.lock`: a POSIX record lock that the kernel drops when the
 * holder dies however it dies, so a lock left by a crashed daemon is simply
 * taken over, and two daemons starting at once cannot both win. Held for
 * the daemon's whole life; released when its scope closes.
 */
export const holdStateDirLock = Effect.fn("DaemonLock.hold")(function*(stateDir: string, socketPath: string) {
  yield* lockStateDir(stateDir, {
    holder: { socket: socketPath },
    advice: "or give this daemon a state dir of its own with --state-dir DIR (two daemons must never share one)",
    readOnly: false
  })
})

/**
 * The same lock for `planterd import-legacy`, which must never write to a
 * state dir a daemon is using (nor let one start meanwhile). A dry run
 * takes it only where a daemon ever ran, and writes nothing.
 */
export const holdStateDirLockForImport = Effect.fn("DaemonLock.holdForImport")(
  function*(stateDir: string, options: { readonly dryRun: boolean }) {
    yield* lockStateDir(stateDir, {
      holder: { socket: null, command: "planterd import-legacy" },
      advice:
        "then import again (a running planterd imports the prototype's records it finds in its own state dir only when it starts)",
      readOnly: options.dryRun
    })
  }
)
