import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as util from "node:util"
import type { ProcessExit } from "../services/SandboxRunner.js"

/**
 * Starts a job's process with glibc's `posix_spawn` (through koffi) instead
 * of `child_process.spawn`. Node 20's libuv forks the whole daemon for every
 * spawn: the kernel copies the page tables of a ~130 MiB process while the
 * event loop waits (1.5–3.6 ms per job measured in the daemon, the largest
 * single cost of a start). glibc's `posix_spawn` uses `CLONE_VFORK`: the
 * child borrows the daemon's memory until its `exec`, so the cost does not
 * grow with the daemon.
 *
 * `posix_spawn` runs on a worker thread (koffi's async call): the event
 * loop goes on serving requests while the child is cloned, creates the
 * job's log files (the file actions open them in the child: creating a
 * file on this ext4 costs ~0.3 ms of kernel time each, which the event
 * loop used to wait for) and reaches its `exec`.
 *
 * The child is set up as libuv sets up a detached one: its own session
 * (`setsid`), every signal at its default disposition (the daemon ignores
 * SIGPIPE, and an ignored signal survives `exec`), an empty signal mask,
 * stdin from /dev/null, stdout and stderr (and descriptor 3, a launcher's
 * status) on the files it creates (0600), its working directory, its
 * environment. Every other descriptor the daemon holds is close-on-exec
 * (Node and SQLite open them so), as with libuv.
 *
 * libuv reaps only the children it started (`waitpid` per pid), so the
 * children started here are reaped here: on each SIGCHLD, `waitpid(pid,
 * WNOHANG)` for each of them. The table holds running children only.
 */
export interface SpawnRequest {
  /** The executable's absolute path (already resolved on the job's PATH). */
  readonly file: string
  readonly argv: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** Files the child creates (0600, truncated) as its stdout and stderr. */
  readonly stdoutPath: string
  readonly stderrPath: string
  /** A file the child creates as descriptor 3 (a launcher's status), or none. */
  readonly statusPath: string | null
}

export interface Spawned {
  readonly pid: number
  /** Settles when the child has exited and been reaped. */
  readonly exit: Promise<ProcessExit>
}

/**
 * `posix_spawn` refused: the errno's name (ENOENT, ENOSPC, …) and whether
 * creating the output files failed (`files`) or starting the command
 * (`exec`: not found, not executable, its cwd gone).
 */
export interface SpawnFailure {
  readonly code: string
  /** The errno's text, e.g. `no space left on device`. */
  readonly description: string
  readonly stage: "files" | "exec"
}

export interface PosixSpawner {
  readonly spawn: (request: SpawnRequest, done: (result: Spawned | SpawnFailure) => void) => void
}

// glibc's <spawn.h> flags.
const POSIX_SPAWN_SETSIGDEF = 0x04
const POSIX_SPAWN_SETSIGMASK = 0x08
const POSIX_SPAWN_SETSID = 0x80
const WNOHANG = 1
/**
 * The job's output files: never through a symlink (`O_NOFOLLOW`). A made-ahead log file (TmpDirPool) is checked
 * and then renamed into place, and a process of the daemon's uid could swap a symlink in between: truncating and
 * writing whatever it points at.
 */
const CREATE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW

/** Room for glibc's opaque types (posix_spawn_file_actions_t 80 bytes, posix_spawnattr_t 336, sigset_t 128 on x86-64 and arm64), with margin. */
const OPAQUE_BYTES = 1024

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(os.constants.signals).map(([name, number]) => [number, name as NodeJS.Signals])
)

/** A `waitpid` status as Node reports an exit: a code, or the signal that ended it. */
export const decodeWaitStatus = (status: number): ProcessExit => {
  const low = status & 0x7f
  if (low === 0) return { code: (status >> 8) & 0xff, signal: null }
  return { code: null, signal: signalNames.get(low) ?? null }
}

/** An errno as Node names and words it (ENOSPC, `no space left on device`). */
const describeErrno = (errno: number) => {
  const [code, description] = util.getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, "unknown error"]
  return { code, description }
}

/** A string koffi would cut short at its first NUL: such a request goes to child_process, which refuses it in words. */
const hasNul = (value: string) => value.includes("\0")

const load = (): PosixSpawner | undefined => {
  if (process.platform !== "linux") return undefined
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
  const libc = koffi.load("libc.so.6")
  const posixSpawn = libc.func(
    "int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)"
  )
  const actionsInit = libc.func("int posix_spawn_file_actions_init(void *actions)")
  const actionsDestroy = libc.func("int posix_spawn_file_actions_destroy(void *actions)")
  const addOpen = libc.func(
    "int posix_spawn_file_actions_addopen(void *actions, int fd, const char *path, int oflag, uint32 mode)"
  )
  // glibc 2.29 and later (Debian 11, Ubuntu 20.04, RHEL 9); without it koffi throws here and jobs use child_process.
  const addChdir = libc.func("int posix_spawn_file_actions_addchdir_np(void *actions, const char *path)")
  const attrInit = libc.func("int posix_spawnattr_init(void *attr)")
  const attrSetFlags = libc.func("int posix_spawnattr_setflags(void *attr, short flags)")
  const attrSetSigDefault = libc.func("int posix_spawnattr_setsigdefault(void *attr, void *set)")
  const attrSetSigMask = libc.func("int posix_spawnattr_setsigmask(void *attr, void *set)")
  const sigFillSet = libc.func("int sigfillset(void *set)")
  const sigEmptySet = libc.func("int sigemptyset(void *set)")
  const waitpid = libc.func("int waitpid(int pid, _Out_ int *status, int options)")

  // The attributes are the same for every job: set once, only read by posix_spawn.
  const attr = Buffer.alloc(OPAQUE_BYTES)
  const allSignals = Buffer.alloc(OPAQUE_BYTES)
  const noSignals = Buffer.alloc(OPAQUE_BYTES)
  if (
    attrInit(attr) !== 0 || sigFillSet(allSignals) !== 0 || sigEmptySet(noSignals) !== 0 ||
    attrSetFlags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) !== 0 ||
    attrSetSigDefault(attr, allSignals) !== 0 || attrSetSigMask(attr, noSignals) !== 0
  ) return undefined
  // glibc's sigfillset leaves out its two internal signals (32 and 33), which posix_spawn then sets to
  // SIG_IGN in the child, and an ignored signal survives exec. libuv's child has them at their defaults:
  // so does ours (bits 31 and 32 of the set's first word). The child blocks every signal until its exec.
  if (os.endianness() === "LE") {
    allSignals[3] = allSignals[3]! | 0x80
    allSignals[4] = allSignals[4]! | 0x01
    if (attrSetSigDefault(attr, allSignals) !== 0) return undefined
  }
  const running = new Map<number, (exit: ProcessExit) => void>()
  const status = [0]
  /** Reaps `pid` if it has exited: true when it was (or is no child of ours any more). */
  const reapOne = (pid: number, settle: (exit: ProcessExit) => void) => {
    const reaped = waitpid(pid, status, WNOHANG) as number
    if (reaped === 0) return false
    running.delete(pid)
    // -1 (ECHILD): someone else reaped it; its status is lost, not its end.
    settle(reaped === pid ? decodeWaitStatus(status[0]!) : { code: null, signal: null })
    return true
  }
  // libuv delivers SIGCHLD on the event loop; its handle is unref'd, so it keeps no daemon alive.
  process.on("SIGCHLD", () => {
    for (const [pid, settle] of running) reapOne(pid, settle)
  })

  /** The file actions of one spawn (each call has its own: spawns overlap on the worker threads). */
  const fileActions = (request: SpawnRequest) => {
    const actions = Buffer.alloc(OPAQUE_BYTES)
    if (actionsInit(actions) !== 0) return undefined
    const ok = addOpen(actions, 0, "/dev/null", fs.constants.O_RDONLY, 0) === 0 &&
      addOpen(actions, 1, request.stdoutPath, CREATE_FLAGS, 0o600) === 0 &&
      addOpen(actions, 2, request.stderrPath, CREATE_FLAGS, 0o600) === 0 &&
      (request.statusPath === null || addOpen(actions, 3, request.statusPath, CREATE_FLAGS, 0o600) === 0) &&
      addChdir(actions, request.cwd) === 0
    if (ok) return actions
    actionsDestroy(actions)
    return undefined
  }

  /**
   * Which step failed: the file actions run in order, so an output file that is missing (or is no regular file,
   * a symlink `O_NOFOLLOW` refused) says it was theirs.
   */
  const stageOf = (request: SpawnRequest): SpawnFailure["stage"] =>
    [request.stdoutPath, request.stderrPath, ...(request.statusPath === null ? [] : [request.statusPath])]
        .every((file) => fs.lstatSync(file, { throwIfNoEntry: false })?.isFile() === true)
      ? "exec"
      : "files"

  return {
    spawn: (request, done) => {
      const actions = fileActions(request)
      if (actions === undefined) return done({ ...describeErrno(os.constants.errno.ENOMEM), stage: "files" })
      const pid = [0]
      const env = Object.entries(request.env).map(([name, value]) => `${name}=${value}`)
      const args = [pid, request.file, actions, attr, [...request.argv, null], [...env, null]] as const
      const finish = (error: number) => {
        actionsDestroy(actions)
        if (error !== 0) return done({ ...describeErrno(error), stage: stageOf(request) })
        const child = pid[0]!
        done({
          pid: child,
          exit: new Promise<ProcessExit>((settle) => {
            // It may have exited, and its SIGCHLD been handled, before it was listed here.
            if (!reapOne(child, settle)) running.set(child, settle)
          })
        })
      }
      try {
        posixSpawn.async(
          ...args,
          (failure: unknown, error: number) => finish(failure ? os.constants.errno.EFAULT : error)
        )
      } catch {
        // koffi's queue of async calls is full (256): this one runs on the event loop.
        finish(posixSpawn(...args) as number)
      }
    }
  }
}

let loaded: PosixSpawner | undefined | null = null

/**
 * The spawner, loaded once; undefined where it cannot be used (not Linux,
 * no koffi, a libc without `posix_spawn_file_actions_addchdir_np`): jobs
 * then start through child_process.
 */
export const posixSpawner = (): PosixSpawner | undefined => {
  if (loaded === null) {
    try {
      loaded = load()
    } catch {
      loaded = undefined
    }
  }
  return loaded
}

/** Whether `request` can go through posix_spawn: no string with a NUL byte (koffi would cut it short; child_process refuses it in words). */
export const spawnable = (request: SpawnRequest) =>
  !hasNul(request.file) && !hasNul(request.cwd) && !request.argv.some(hasNul) &&
  !Object.entries(request.env).some(([name, value]) => hasNul(name) || hasNul(value))
