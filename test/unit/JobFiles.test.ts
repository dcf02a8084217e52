import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { closeJobFiles, jobFiles, openJobFiles, removeJobLeftovers } from "../../src/layers/JobFiles.js"
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
      yield* removeJobLeftovers(files, { status: true })
      expect([files.tmp, files.profile, files.status].filter((file) => fs.existsSync(file))).toEqual([])
      expect([files.stdout, files.stderr].filter((file) => fs.existsSync(file))).toEqual([files.stdout, files.stderr])
    }))

  it.scoped("removes a TMPDIR the job filled (nested files), and keeps the status file while its end is not on disk", () =>
    Effect.gen(function*() {
      const { files } = yield* finishedJob
      fs.mkdirSync(path.join(files.tmp, "a", "b"), { recursive: true })
      fs.writeFileSync(path.join(files.tmp, "a", "b", "scratch"), "data")
      yield* removeJobLeftovers(files, { status: false })
      expect(fs.existsSync(files.tmp)).toBe(false)
      expect(fs.existsSync(files.status)).toBe(true)
    }))

  it.scoped("is quiet about files already gone", () =>
    Effect.gen(function*() {
      const { files } = yield* finishedJob
      yield* removeJobLeftovers(files, { status: true })
      yield* removeJobLeftovers(files, { status: true })
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

describe("openJobFiles", () => {
  it.scoped("creates the TMPDIR (0700) and the log and status files (0600), each descriptor writing to its own file", () =>
    Effect.gen(function*() {
      const { files } = yield* emptyStateDir
      const open = yield* openJobFiles(files)
      fs.writeSync(open.stdout, "out")
      fs.writeSync(open.stderr, "err")
      fs.writeSync(open.status, "status")
      yield* closeJobFiles(open)
      expect(fs.statSync(files.tmp).mode & 0o777).toBe(0o700)
      for (const file of [files.stdout, files.stderr, files.status]) expect(fs.statSync(file).mode & 0o777).toBe(0o600)
      expect([files.stdout, files.stderr, files.status].map((file) => fs.readFileSync(file, "utf8"))).toEqual([
        "out",
        "err",
        "status"
      ])
    }))

  it.scoped("fails with where and why, and leaves nothing behind, when one of the files cannot be made", () =>
    Effect.gen(function*() {
      const { files, paths } = yield* emptyStateDir
      fs.rmSync(paths.run, { recursive: true })
      const error = yield* Effect.flip(openJobFiles(files))
      expect(error._tag).toBe("DaemonFault")
      expect(error.message).toMatch(/^cannot prepare the job's files under .*ENOENT.*nothing was started$/)
      expect([files.tmp, files.stdout, files.stderr, files.status].filter((file) => fs.existsSync(file))).toEqual([])
    }))
})
