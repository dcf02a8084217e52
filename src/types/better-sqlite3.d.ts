// The few parts of better-sqlite3 (a dependency of @effect/sql-sqlite-node, ships no types) that
// src/layers/SqliteDirect.ts uses.
declare module "better-sqlite3" {
  namespace BetterSqlite3 {
    interface RunResult {
      readonly changes: number
    }
    interface Statement {
      run(...params: ReadonlyArray<unknown>): RunResult
      get(...params: ReadonlyArray<unknown>): unknown
      all(...params: ReadonlyArray<unknown>): Array<unknown>
    }
    interface Transaction<A> {
      (): A
      immediate(): A
    }
    interface Database {
      prepare(source: string): Statement
      pragma(source: string): unknown
      transaction<A>(fn: () => A): Transaction<A>
      /** Whether a transaction is open (SQLite may roll one back on its own, e.g. on SQLITE_FULL). */
      readonly inTransaction: boolean
      close(): void
    }
  }
  const Database: new(filename: string, options?: { readonly fileMustExist?: boolean }) => BetterSqlite3.Database
  export default Database
  export type { BetterSqlite3 }
}
