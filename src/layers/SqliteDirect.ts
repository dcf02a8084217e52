import { SqlError } from "@effect/sql/SqlError"
import type { BetterSqlite3 } from "better-sqlite3"
import Database from "better-sqlite3"
import { Effect, Exit } from "effect"
import type { Scope } from "effect"
import * as fs from "node:fs"

/**
 * What a direct call did: `Done` with its answer, or `Unavailable` when the direct connection cannot take it now
 * (another connection holds the database's write lock, or the connection could not be opened), in which case the
 * caller runs the same statements through @effect/sql instead.
 */
export type DirectOutcome<A> =
  | { readonly _tag: "Done"; readonly value: A }
  | { readonly _tag: "Unavailable" }

/** Prepares (once per text) a statement on the direct connection. */
export type Prepare = (sql: string) => BetterSqlite3.Statement

export interface SqliteDirect {
  /** Runs `body` in one `BEGIN IMMEDIATE` transaction, synchronously: it commits, or rolls back and fails. */
  readonly transaction: <A>(body: (prepare: Prepare) => A) => Effect.Effect<DirectOutcome<A>, SqlError>
  /** Runs `body` outside a transaction (each write statement commits on its own). */
  readonly run: <A>(body: (prepare: Prepare) => A) => Effect.Effect<DirectOutcome<A>, SqlError>
  /**
   * Runs `body` as `transaction` does, in one `BEGIN IMMEDIATE` … `COMMIT` shared with the other bodies asked for
   * in the same turn of the event loop (each in a savepoint of its own, so one that fails rolls back alone). Job
   * ends come in batches (EndDeferral lets them go together): one commit writes the pages they share (the
   * jobs and events tables' last pages and their indexes) once instead of once per job.
   */
  readonly batched: <A>(body: (prepare: Prepare) => A) => Effect.Effect<DirectOutcome<A>, SqlError>
}

const UNAVAILABLE: DirectOutcome<never> = { _tag: "Unavailable" }

/** SQLite's "someone else holds the lock": the other connection is inside a transaction. */
const isBusy = (cause: unknown) => {
  const code = (cause as { code?: unknown } | null)?.code
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
}

/**
 * A second, synchronous connection to the state database for the statements of every job's start and end (the
 * `starting` row, its pid, the audit row, the end, the cell lookup). Through @effect/sql each statement costs
 * ~45 KB of allocation and a few hundred Effect steps (its span, the connection's semaphore, the prepared
 * statement cache, the compiler): ~570 KB per job in all, one or two of the daemon's 1 MiB young-generation
 * collections (docs/benchmarks.md, "50 starts"). Here they are plain better-sqlite3 calls (~210 KB with the
 * repository's schemas and spans).
 *
 * Both connections write the same WAL database; this one never waits for the other: its busy timeout is 0 and
 * its transactions run synchronously from BEGIN to COMMIT (no other code runs in between, so it never holds the
 * lock across an await). When the other connection is inside a transaction (the migrator, an import, a cell
 * removal…), the call answers `Unavailable` and the repository runs the same statements through @effect/sql,
 * which queues behind that transaction. Opened on first use (the idle daemon does not carry it), with a small
 * page cache (the hot statements touch the last pages of a few tables and indexes); closed with the repository.
 * Its statement cache is bounded by the repository's fixed statement texts.
 *
 * It opens only the very file the other connection has open (the one there when this was made: same device
 * and inode, checked before and after opening, never created): a state dir whose database was moved or replaced
 * under the running daemon would otherwise get a new empty file, or job rows written to another database than
 * the one every read sees. Then, and once the repository has closed, it answers `Unavailable` for good.
 */
export const make = (filename: string): Effect.Effect<SqliteDirect, never, Scope.Scope> =>
  Effect.gen(function*() {
    let db: BetterSqlite3.Database | undefined
    // Set when it cannot open (or may not: the file is another one now), and when the repository closed.
    let unavailable = false
    const statements = new Map<string, BetterSqlite3.Statement>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        unavailable = true
        statements.clear()
        db?.close()
        db = undefined
      })
    )

    const identity = (): string | undefined => {
      const stat = fs.statSync(filename, { throwIfNoEntry: false })
      return stat === undefined ? undefined : `${stat.dev}:${stat.ino}`
    }
    // The other connection's file: it has just run the migrations on it.
    const expected = identity()

    const connection = (): BetterSqlite3.Database | undefined => {
      if (db !== undefined || unavailable) return db
      let opened: BetterSqlite3.Database | undefined
      try {
        if (expected === undefined || identity() !== expected) throw new Error("not the database the daemon opened")
        opened = new Database(filename, { fileMustExist: true })
        if (identity() !== expected) throw new Error("not the database the daemon opened")
        opened.pragma("busy_timeout = 0")
        opened.pragma("synchronous = NORMAL")
        opened.pragma("foreign_keys = ON")
        opened.pragma("cache_size = -256")
        db = opened
      } catch {
        // The @effect/sql connection serves everything then; it reports the database's problems itself.
        opened?.close()
        unavailable = true
      }
      return db
    }

    // One transaction function per connection, made once (better-sqlite3's `transaction` builds four wrapper
    // functions and defines their properties on every call): `.immediate(body)` outside a transaction is
    // `BEGIN IMMEDIATE` … `COMMIT`, and the plain call inside one is a savepoint.
    type Wrapped = BetterSqlite3.Transaction<unknown, [body: () => unknown]>
    let transactionOf: { readonly on: BetterSqlite3.Database; readonly run: Wrapped } | undefined
    const inTransaction = (open: BetterSqlite3.Database) => {
      if (transactionOf?.on !== open) {
        transactionOf = { on: open, run: open.transaction((body: () => unknown) => body()) }
      }
      return transactionOf.run
    }

    const prepare: Prepare = (sql) => {
      let statement = statements.get(sql)
      if (statement === undefined) {
        statement = db!.prepare(sql)
        statements.set(sql, statement)
      }
      return statement
    }

    /**
     * After a failed call: a connection still inside a transaction (a COMMIT that failed, then a ROLLBACK that
     * failed too) would refuse every later `BEGIN`, and each job's start with it, until the daemon restarts. It is
     * rolled back, or else closed, and the next call opens it afresh (with the same checks as the first).
     */
    const recover = (open: BetterSqlite3.Database) => {
      if (!open.inTransaction) return
      try {
        open.prepare("ROLLBACK").run()
      } catch {
        // Closed below.
      }
      if (!open.inTransaction) return
      statements.clear()
      transactionOf = undefined
      db = undefined
      try {
        open.close()
      } catch {
        // Whatever it held goes with the handle; the next call opens another.
      }
    }

    const attempt = <A>(body: (connection: BetterSqlite3.Database) => A): Effect.Effect<DirectOutcome<A>, SqlError> =>
      Effect.suspend((): Effect.Effect<DirectOutcome<A>, SqlError> => {
        const open = connection()
        if (open === undefined) return Effect.succeed(UNAVAILABLE)
        try {
          return Effect.succeed({ _tag: "Done", value: body(open) })
        } catch (cause) {
          recover(open)
          if (isBusy(cause)) return Effect.succeed(UNAVAILABLE)
          return Effect.fail(new SqlError({ cause, message: "Failed to execute statement" }))
        }
      })

    type Outcome = Exit.Exit<DirectOutcome<unknown>, SqlError>
    let queued: Array<{ readonly body: (prepare: Prepare) => unknown; readonly done: (outcome: Outcome) => void }> = []

    /** Runs the bodies queued this turn in one transaction, each in its savepoint, and answers each. */
    const flush = () => {
      const batch = queued
      queued = []
      if (batch.length === 0) return
      const answers: Array<Outcome> = []
      const outcome = Effect.runSync(Effect.exit(attempt((open) => {
        const transaction = inTransaction(open)
        return transaction.immediate(() => {
          answers.length = 0
          for (const { body } of batch) {
            try {
              // A transaction function called inside one runs as a savepoint.
              answers.push(Exit.succeed({ _tag: "Done", value: transaction(() => body(prepare)) }))
            } catch (cause) {
              answers.push(Exit.fail(new SqlError({ cause, message: "Failed to execute statement" })))
              // Some errors (SQLITE_FULL, SQLITE_IOERR, …) roll back the whole transaction, the bodies before
              // this one included. The rest must not run on their own (each would commit alone while the
              // batch is answered as failed): the batch fails, every body answered with this error (not the
              // COMMIT's "no transaction is active" that would follow, which hides a full disk).
              if (!open.inTransaction) throw cause
            }
          }
        })
      })))
      batch.forEach(({ done }, index) => {
        // The commit's outcome (or Unavailable) for all when it did not commit, else each body's own.
        if (Exit.isFailure(outcome) || outcome.value._tag === "Unavailable") return done(outcome)
        done(answers[index]!)
      })
    }

    return {
      transaction: (body) =>
        attempt((open) => inTransaction(open).immediate(() => body(prepare)) as ReturnType<typeof body>),
      run: (body) => attempt(() => body(prepare)),
      batched: <A>(body: (prepare: Prepare) => A) =>
        Effect.async<DirectOutcome<A>, SqlError>((resume) => {
          const entry = { body, done: (outcome: Outcome) => resume(outcome as Exit.Exit<DirectOutcome<A>, SqlError>) }
          if (queued.length === 0) setImmediate(flush)
          queued.push(entry)
          return Effect.sync(() => {
            queued = queued.filter((other) => other !== entry)
          })
        })
    }
  })
