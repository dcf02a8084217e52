import * as FileSystem from "@effect/platform/FileSystem"
import * as SqliteMigrator from "@effect/sql-sqlite-node/SqliteMigrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import * as path from "node:path"
import { packageRoot } from "../rpc/PackageRoot.js"

export const migrationsDir = path.join(packageRoot, "migrations")

/**
 * Loads `migrations/NNNN_name.sql`. better-sqlite3 prepares one statement at
 * a time, so each file is split on the semicolons that end a line; the files
 * hold plain DDL with no semicolons inside strings or triggers.
 */
export const sqlFileLoader = (dir: string): SqliteMigrator.Loader<FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const files = yield* fs.readDirectory(dir)
    const migrations: Array<SqliteMigrator.ResolvedMigration> = []
    for (const file of files) {
      const match = /^(\d+)_([\w-]+)\.sql$/.exec(file)
      if (!match) continue
      const text = yield* fs.readFileString(path.join(dir, file))
      const statements = text
        .split(/;\s*$/m)
        .map((statement) => statement.replace(/^\s*--.*$/gm, "").trim())
        .filter((statement) => statement.length > 0)
      const apply = Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        for (const statement of statements) yield* sql.unsafe(statement)
      })
      // The migrator "imports" a migration first, then runs what the import yields.
      migrations.push([Number(match[1]), match[2]!, Effect.succeed(apply)])
    }
    return migrations
  }).pipe(
    Effect.mapError((cause) =>
      new SqliteMigrator.MigrationError({
        reason: "import-error",
        message: `cannot read migrations from ${dir}: ${cause.message}`,
        cause
      })
    )
  )

/** Applies pending migrations in order and records each in `effect_sql_migrations`. */
export const runMigrations = SqliteMigrator.run({ loader: sqlFileLoader(migrationsDir) }).pipe(
  Effect.withSpan("Migrations.run")
)
