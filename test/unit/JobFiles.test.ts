import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { jobFiles, prepareTmpDir, removeJobLeftovers } from "../../src/layers/JobFiles.js"
import type { JobId } from "../../src/rpc/Ids.js"
import { statePaths } from "../../src/services/DaemonConfig.js"

/** A state dir holding one finished job's files, as the daemon leaves them, removed after the test. */
const finishedJob = Effect.acquireRelease(
  Effect.sync(() => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-jobfiles-"))
    const paths = statePaths(stateDir)
    for (const dir of [paths.logs, paths.tmp, paths.run, paths.sandbox]) fs.mkdirSync(dir, { recursive: true })
    const files = jobFiles(paths, "job-test0000000001" as JobId)
    fs.mkdirSync(files.tmp, { mode: 0o700 })
    for (const file of [files.stdout, files.stderr, files.status, files.profile]) fs.writeFileSync(file, "x")
    return { stateDir, files }
  }),
  ({ stateDir }) => Effect.sync(() => fs.rmSync(stateDir, { recursive: true, force: true }))
)

describe("removeJobLeftovers", () => {
  it.scoped("removes an empty TMPDIR, the profile and the status file, and keeps the logs", () =>
    Effect.gen(function*() {
      const { files } = yield* finishedJob
      yield* removeJobLeftovers(files, { status: true, profile: true })
      expect([files.tmp, files.profile, files.status].filter((file) => fs.existsSync(file))).toEqual([])
      expect([files.stdout, files.stderr].filter((file) => fs.existsSync(file))).toEqual([files.stdout, files.stderr])
    }))

  it.scoped("removes a TMPDIR the job filled (nested files), and keeps the status file while its end is not on disk", () =>
    Effect.gen(function*() {
      const { files } = yield* finishedJob
      fs.mkdirSync(path.join(files.tmp, "a", "b"), { recursive: true })
      fs.writeFileSync(path.join(files.tmp, "a", "b", "scratch"), "data")
      yield* removeJobLeftovers(files, { status: false, profile: true })
      expect(fs.existsSync(files.tmp)).toBe(false)
      expect(fs.existsSync(files.status)).toBe(true)
    }))

  it.scoped("is quiet about files already gone", () =>
    Effect.gen(function*() {
      const { files } = yield* finishedJob
      yield* removeJobLeftovers(files, { status: true, profile: true })
      yield* removeJobLeftovers(files, { status: true, profile: true })
      expect(fs.existsSync(files.tmp)).toBe(false)
    }))
})

/** An empty state dir with the daemon's directories, removed after the test. */
const emptyStateDir = Effect.acquireRelease(
  Effect.sync(() => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-jobfiles-"))
    const paths = statePaths(stateDir)
    for (const dir of [paths.logs, paths.tmp, paths.run, paths.sandbox]) fs.mkdirSync(dir, { recursive: true })
    return { paths, files: jobFiles(paths, "job-test0000000002" as JobId) }
  }),
  ({ paths }) => Effect.sync(() => fs.rmSync(path.dirname(paths.logs), { recursive: true, force: true }))
)

describe("prepareTmpDir", () => {
  it.scoped("creates the job's TMPDIR (0700)", () =>
    Effect.gen(function*() {
      const { files } = yield* emptyStateDir
      yield* prepareTmpDir(files)
      expect(fs.statSync(files.tmp).mode & 0o777).toBe(0o700)
    }))

  it.scoped("fails with where and why, and leaves nothing behind, when it cannot be made", () =>
    Effect.gen(function*() {
      const { files, paths } = yield* emptyStateDir
      fs.rmSync(paths.tmp, { recursive: true })
      fs.writeFileSync(paths.tmp, "not a directory")
      const error = yield* Effect.flip(prepareTmpDir(files))
      expect(error._tag).toBe("DaemonFault")
      expect(error.message).toMatch(/^cannot prepare the job's files under .*(EEXIST|ENOTDIR).*nothing was started$/)
      expect([files.stdout, files.stderr, files.status].filter((file) => fs.existsSync(file))).toEqual([])
    }))
})
