import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

/** Another live daemon holds the state dir; the message names it and says what to do. */
export class StateDirLocked extends Schema.TaggedError<StateDirLocked>()("StateDirLocked", {
  message: Schema.String
}) {}

/** Who holds the lock, written beside it for the message a second daemon prints. */
const Holder = Schema.parseJson(Schema.Struct({ pid: Schema.Number, socket: Schema.String }))

// The few better-sqlite3 calls the lock needs (the package ships no types here).
interface LockDb {
  exec(sql: string): void
  pragma(sql: string): unknown
  close(): void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new(
  file: string,
  options: { readonly timeout: number }
) => LockDb

const describeHolder = (holderFile: string) => {
  try {
    const holder = Schema.decodeUnknownSync(Holder)(fs.readFileSync(holderFile, "utf8"))
    return { text: `planterd (pid ${holder.pid}, socket ${holder.socket})`, stop: `kill ${holder.pid}` }
  } catch {
    return { text: "another planterd", stop: "stop it" }
  }
}

/**
 * One daemon per state dir. The lock is an exclusive SQLite transaction on
 * `<state>/planterd.lock`: a POSIX record lock that the kernel drops when the
 * holder dies however it dies, so a lock left by a crashed daemon is simply
 * taken over, and two daemons starting at once cannot both win. Held for
 * the daemon's whole life; released when its scope closes.
 */
export const holdStateDirLock = Effect.fn("DaemonLock.hold")(function*(stateDir: string, socketPath: string) {
  const lockFile = path.join(stateDir, "planterd.lock")
  const holderFile = path.join(stateDir, "planterd.pid")
  const db = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        const db = new Database(lockFile, { timeout: 0 })
        try {
          fs.chmodSync(lockFile, 0o600)
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
        if (!busy) return new StateDirLocked({ message: `cannot lock the state dir ${stateDir}: ${(error as Error).message}` })
        const holder = describeHolder(holderFile)
        return new StateDirLocked({
          message: `${holder.text} already uses the state dir ${stateDir}: ${holder.stop} first, or give this daemon a state dir of its own with --state-dir DIR (two daemons must never share one)`
        })
      }
    }),
    (db) =>
      Effect.sync(() => {
        fs.rmSync(holderFile, { force: true })
        db.close()
      })
  )
  yield* Effect.sync(() =>
    fs.writeFileSync(holderFile, JSON.stringify({ pid: process.pid, socket: socketPath }), { mode: 0o600 })
  )
  return db
})
