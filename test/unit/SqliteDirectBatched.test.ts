import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SqliteDirect from "../../src/layers/SqliteDirect.js"

/** A WAL database with one table, made (and later removed) outside the direct connection, as the migrator does. */
const tempDb = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-batched-"))
    const file = path.join(dir, "planter.db")
    const other = new Database(file)
    other.pragma("journal_mode = WAL")
    other.prepare("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)").run()
    return { dir, file, other }
  }),
  ({ dir, other }) =>
    Effect.sync(() => {
      other.close()
      fs.rmSync(dir, { recursive: true, force: true })
    })
)

const insert = (v: string) => (prepare: SqliteDirect.Prepare) => {
  prepare("INSERT INTO t (v) VALUES (?)").run(v)
  return (prepare("SELECT last_insert_rowid() AS id").get() as { id: number }).id
}

describe("SqliteDirect.batched: the bodies asked for in one turn share one transaction", () => {
  it.scoped("answers each body its own result, and one that fails rolls back alone", () =>
    Effect.gen(function*() {
      const { file, other } = yield* tempDb
      const direct = yield* SqliteDirect.make(file)
      const [a, duplicate, b, counted] = yield* Effect.all([
        direct.batched(insert("a")),
        direct.batched((prepare) => {
          insert("dup")(prepare)
          // Refused by the unique index: this body's savepoint (its first insert too) is rolled back.
          return insert("a")(prepare)
        }).pipe(Effect.either),
        direct.batched(insert("b")),
        // Sees what the bodies before it in the batch wrote: one transaction.
        direct.batched((prepare) => (prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n)
      ], { concurrency: "unbounded" })
      expect(a).toEqual({ _tag: "Done", value: 1 })
      expect(duplicate._tag === "Left" && String((duplicate.left.cause as Error).message)).toContain(
        "UNIQUE constraint failed: t.v"
      )
      expect(b._tag === "Done" && b.value).toBeGreaterThan(1)
      expect(counted).toEqual({ _tag: "Done", value: 2 })
      expect(other.prepare("SELECT v FROM t ORDER BY id").all()).toEqual([{ v: "a" }, { v: "b" }])
    }))

  it.scoped("commits once for the batch: the pages its bodies share are written to the WAL once", () =>
    Effect.gen(function*() {
      const { file } = yield* tempDb
      const direct = yield* SqliteDirect.make(file)
      const walBytes = () => fs.statSync(`${file}-wal`).size
      yield* direct.transaction(insert("warm-up"))
      const before = walBytes()
      // Ten transactions one after the other: each commit writes the table's page and its index's page again.
      yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => `one-${i}`), (v) => direct.transaction(insert(v)))
      const separate = walBytes() - before
      const middle = walBytes()
      yield* Effect.all(Array.from({ length: 10 }, (_, i) => direct.batched(insert(`batched-${i}`))), {
        concurrency: "unbounded"
      })
      const batched = walBytes() - middle
      expect(separate).toBeGreaterThanOrEqual(10 * 4096)
      expect(batched, `WAL bytes for 10 bodies in one batch (10 transactions: ${separate})`).toBeLessThanOrEqual(
        3 * (4096 + 24)
      )
    }))

  it.scoped("answers Unavailable to the whole batch while the other connection holds a transaction", () =>
    Effect.gen(function*() {
      const { file, other } = yield* tempDb
      const direct = yield* SqliteDirect.make(file)
      other.prepare("BEGIN IMMEDIATE").run()
      const outcomes = yield* Effect.all([direct.batched(insert("x")), direct.batched(insert("y"))], {
        concurrency: "unbounded"
      })
      expect(outcomes).toEqual([{ _tag: "Unavailable" }, { _tag: "Unavailable" }])
      other.prepare("COMMIT").run()
      expect(yield* direct.batched(insert("z"))).toEqual({ _tag: "Done", value: 1 })
      expect(other.prepare("SELECT v FROM t").all()).toEqual([{ v: "z" }])
    }))

  it.scoped("a body whose error ended the whole transaction fails the batch, and nothing after it commits", () =>
    Effect.gen(function*() {
      const { file, other } = yield* tempDb
      const direct = yield* SqliteDirect.make(file)
      const outcomes = yield* Effect.all(
        [
          direct.batched(insert("before")),
          direct.batched((prepare) => {
            insert("rolled-back")(prepare)
            // What SQLite does on SQLITE_FULL or SQLITE_IOERR: the whole transaction is rolled back.
            prepare("ROLLBACK").run()
            throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" })
          }),
          direct.batched(insert("after"))
        ].map(Effect.either),
        { concurrency: "unbounded" }
      )
      // Nothing was committed, so nothing is answered as done.
      expect(outcomes.map((outcome) => outcome._tag)).toEqual(["Left", "Left", "Left"])
      // Each is answered with what ended the transaction (the repository words SQLITE_FULL as a full disk), not
      // with the COMMIT's "no transaction is active" that follows it.
      for (const outcome of outcomes) {
        expect(outcome._tag === "Left" && (outcome.left.cause as { code?: string }).code).toBe("SQLITE_FULL")
      }
      expect(other.prepare("SELECT v FROM t").all()).toEqual([])
      // The connection is usable again.
      expect(yield* direct.batched(insert("later"))).toEqual({ _tag: "Done", value: 1 })
    }))
})
