import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { JobId } from "../rpc/Ids.js"
import type { statePaths } from "../services/DaemonConfig.js"
import { DaemonFault } from "../services/DomainErrors.js"
import { fromLauncherStatus } from "../services/ExitStatus.js"
import { logFileName } from "../services/LogReader.js"
import type { ProcessExit } from "../services/SandboxRunner.js"

/** Where one job's files live under the state dir. */
export const jobFiles = (paths: ReturnType<typeof statePaths>, id: JobId) => ({
  stdout: path.join(paths.logs, logFileName(id, "stdout")),
  stderr: path.join(paths.logs, logFileName(id, "stderr")),
  /** Its private TMPDIR: dies with the job. */
  tmp: path.join(paths.tmp, id),
  /** The launcher's status (bubblewrap --json-status-fd): kept until the job's end is on disk. */
  status: path.join(paths.run, `${id}.status`),
  /** Its rendered macOS sandbox profile. */
  profile: path.join(paths.sandbox, `${id}.sb`)
})
export type JobFiles = ReturnType<typeof jobFiles>

const removeQuietly = (file: string) => {
  try {
    fs.rmSync(file, { recursive: true, force: true })
  } catch {
    // Whatever stopped the job (a full or read-only disk) may stop the clean-up too; it is only disk space.
  }
}

/**
 * A file's size, 0 when it is missing or cannot be read. No exception for a missing file: the log-marks sampler
 * and the limit monitor ask for running jobs' logs many times a second.
 */
export const fileSize = (file: string) => {
  try {
    return fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0
  } catch {
    return 0
  }
}

/** Removes everything a job that never started created; its TMPDIR is kept when `keepTmp` takes it back (TmpDirPool). */
export const removeAllJobFiles = (files: JobFiles, keepTmp: () => boolean = () => false) =>
  Effect.sync(() => {
    ;[files.stdout, files.stderr, files.status, files.profile].forEach(removeQuietly)
    if (!keepTmp()) removeQuietly(files.tmp)
  })

/** Removes an empty directory on the thread pool, or whatever it holds when it is not empty; never fails. */
const removeDirInBackground = (dir: string) =>
  new Promise<void>((resolve) => {
    fs.rmdir(dir, (error) => {
      if (error === null || error.code === "ENOENT") return resolve()
      fs.rm(dir, { recursive: true, force: true }, () => resolve())
    })
  })

/**
 * Removes what a finished job leaves besides its logs: its TMPDIR, its
 * rendered sandbox profile (`profile`: sandbox-exec jobs) and its
 * launcher's status file (`status`: once its end is recorded). The TMPDIR goes off the event loop: an rmdir
 * can wait on the file system's journal (0.2–1.2 ms here, against ~30 µs
 * of CPU), which every job's end paid while other requests waited. One
 * rmdir callback, not fs.promises.rm, whose recursive walk costs ~0.25 ms
 * more CPU per job; the files are unlinked in place (~5 µs each: a thread
 * pool hop would cost more than it saves). The job's fiber still waits
 * for it all, so a stopping daemon leaves nothing behind.
 */
export const removeJobLeftovers = (
  files: JobFiles,
  options: { readonly status: boolean; readonly profile: boolean },
  recycleTmp: (dir: string) => boolean = () => false
) =>
  Effect.suspend(() => {
    // Only files that can exist: a missing one still costs a thrown ENOENT inside rmSync.
    if (options.profile) removeQuietly(files.profile)
    if (options.status) removeQuietly(files.status)
    // An empty TMPDIR as a new one would be becomes the next job's (TmpDirPool): no inode freed.
    return recycleTmp(files.tmp) ? Effect.void : Effect.promise(() => removeDirInBackground(files.tmp))
  })

/**
 * Why the job's files could not be made, as the job's answer says it: where,
 * what the OS said (e.g. `no space left on device`), and that nothing ran.
 */
export const jobFilesFault = (files: JobFiles, problem: string) =>
  new DaemonFault({
    message: `cannot prepare the job's files under ${
      path.dirname(path.dirname(files.stdout))
    }: ${problem}; nothing was started`
  })

/**
 * Creates the job's TMPDIR (0700) on the thread pool: creating a directory
 * on this ext4 costs 0.3–0.9 ms of kernel time, which the event loop used
 * to spend while other requests waited. Its log files (and a launcher's
 * status file) are created by the job's own process as it starts
 * (SandboxRunner), off the event loop too. On failure nothing is left
 * behind.
 */
export const prepareTmpDir = (files: JobFiles): Effect.Effect<void, DaemonFault> =>
  Effect.async<void, DaemonFault>((resume) => {
    fs.mkdir(files.tmp, { recursive: true, mode: 0o700 }, (error) => {
      if (error === null) return resume(Effect.void)
      const problem = error.code === "ENOSPC" ? "no space left on device" : error.message
      resume(Effect.fail(jobFilesFault(files, problem)))
    })
  }).pipe(Effect.tapError(() => removeAllJobFiles(files)))

/** One line of bubblewrap's status: `{"child-pid": N}` first, `{"exit-code": N}` when the sandbox ends. */
const ExitLine = Schema.parseJson(Schema.Struct({ "exit-code": Schema.Int }))

/**
 * The job's exit as its launcher recorded it, or undefined when it wrote
 * none (no launcher, or it was killed before the job ended). bubblewrap
 * reports a job killed by signal N as exit code 128+N: read back as the
 * signal (ExitStatus.fromLauncherStatus).
 */
export const readLauncherExit = (files: JobFiles): ProcessExit | undefined => {
  let text: string
  try {
    text = fs.readFileSync(files.status, "utf8")
  } catch {
    return undefined
  }
  for (const line of text.split("\n").reverse()) {
    const decoded = Schema.decodeUnknownOption(ExitLine)(line)
    if (decoded._tag === "Some") return fromLauncherStatus({ code: decoded.value["exit-code"], signal: null })
  }
  return undefined
}
