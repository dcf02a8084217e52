import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Either, Layer } from "effect"
import type { ChildProcess } from "node:child_process"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Writable } from "node:stream"
import type { SandboxBackend, SandboxMode } from "../rpc/Models.js"
import { JobSandbox } from "../rpc/Models.js"
import { packageRoot } from "../rpc/PackageRoot.js"
import type { SystemPath } from "../services/BubblewrapArgs.js"
import type { BubblewrapFeatures } from "../services/BubblewrapArgs.js"
import {
  bubblewrapArgs,
  LAUNCHER_ENV,
  LINUX_SYSTEM_PATHS,
  privilegeArgs,
  systemPathArgs
} from "../services/BubblewrapArgs.js"
import { DaemonConfig } from "../services/DaemonConfig.js"
import { hotSpan } from "../services/HotSpan.js"
import { JOB_MARKER_ENV } from "../services/ProcessProbe.js"
import type { ProcessExit, SandboxRequest, SandboxStatus, StartedProcess } from "../services/SandboxRunner.js"
import { OutputFilesError, SandboxRunner, SandboxStartError, SpawnError } from "../services/SandboxRunner.js"
import { loadSeatbeltFragments, writeSeatbeltProfile } from "../services/SeatbeltProfile.js"
import type { PosixSpawner, Spawned, SpawnFailure, SpawnRequest } from "./PosixSpawn.js"
import { posixSpawner, spawnable } from "./PosixSpawn.js"

/**
 * A stat that answers undefined for a missing file first: each job's PATH
 * search misses in a few directories before it finds its command, and a
 * thrown ENOENT (an Error with its stack) cost more than the lookup.
 */
const isExecutableFile = (file: string) => {
  try {
    if (fs.statSync(file, { throwIfNoEntry: false })?.isFile() !== true) return false
    fs.accessSync(file, fs.constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Finds `command` as execvp would, on the PATH the job will run with. */
export const resolveExecutable = (command: string, env: Readonly<Record<string, string>>, cwd: string) => {
  if (command.includes("/")) {
    const file = path.resolve(cwd, command)
    return isExecutableFile(file) ? file : undefined
  }
  for (const dir of (env.PATH ?? "").split(":")) {
    if (dir.length === 0) continue
    const file = path.join(dir, command)
    if (isExecutableFile(file)) return file
  }
  return undefined
}

/**
 * A backend that wraps a command into the command line that runs it
 * sandboxed. The launcher itself starts with `LAUNCHER_ENV` only; the
 * command line applies the job's env inside the sandbox.
 */
interface Backend {
  readonly name: SandboxBackend
  readonly wrap: (
    request: SandboxRequest
  ) => Effect.Effect<{ readonly file: string; readonly args: Array<string> }, SandboxStartError>
}

type Detected = { readonly backend: Backend } | { readonly name: SandboxBackend; readonly reason: string }

const findBubblewrap = (): { file: string } | { reason: string } => {
  const configured = process.env.PLANTER_BWRAP
  if (configured !== undefined && configured.length > 0) {
    return isExecutableFile(configured)
      ? { file: configured }
      : {
        reason:
          `PLANTER_BWRAP=${configured} is not an executable file: point it at bwrap, or unset it to find bwrap on PATH (install it with \`apt-get install bubblewrap\` on Debian and Ubuntu, \`dnf install bubblewrap\` on Fedora)`
      }
  }
  const found = resolveExecutable("bwrap", { PATH: process.env.PATH ?? "/usr/bin:/bin" }, "/")
  return found
    ? { file: found }
    : {
      reason:
        "bubblewrap (bwrap) is not installed: install it with `apt-get install bubblewrap` (Debian, Ubuntu) or `dnf install bubblewrap` (Fedora), or point PLANTER_BWRAP at it"
    }
}

/** The Linux system directories as this host has them, plus where its resolver config lives. */
export const linuxSystemPaths = (): Array<SystemPath> => {
  const paths = LINUX_SYSTEM_PATHS.flatMap((dir): Array<SystemPath> => {
    try {
      const stat = fs.lstatSync(dir)
      if (stat.isSymbolicLink()) return [{ path: dir, symlinkTarget: fs.readlinkSync(dir) }]
      return stat.isDirectory() ? [{ path: dir, symlinkTarget: null }] : []
    } catch {
      return []
    }
  })
  // Where /etc/resolv.conf links into /run (systemd-resolved), name lookups
  // need that one directory too, read-only.
  try {
    const resolvDir = path.dirname(fs.realpathSync("/etc/resolv.conf"))
    if (!LINUX_SYSTEM_PATHS.some((dir) => resolvDir === dir || resolvDir.startsWith(dir + "/"))) {
      paths.push({ path: resolvDir, symlinkTarget: null })
    }
  } catch {
    // No resolv.conf: nothing to add.
  }
  return paths
}

/**
 * Chooses the backend for this platform once, at daemon start, and checks
 * that it can really start a sandbox (bwrap can be installed yet refused
 * user namespaces), so jobs learn the cause up front.
 */
const detectLinux = (): Detected => {
  const found = findBubblewrap()
  if ("reason" in found) return { name: "bubblewrap", reason: found.reason }
  const systemPaths = linuxSystemPaths()
  const probeWith = (features: BubblewrapFeatures) =>
    spawnSync(found.file, [
      ...privilegeArgs(features),
      "--unshare-pid",
      ...systemPathArgs(systemPaths),
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--",
      "true"
    ], { encoding: "utf8", timeout: 10_000, env: LAUNCHER_ENV })
  // --disable-userns needs bubblewrap 0.8; older ones still drop every
  // capability, they only let the job make a (powerless) namespace of its own.
  let features: BubblewrapFeatures = { disableUserns: true }
  let probe = probeWith(features)
  if (probe.status !== 0) {
    features = { disableUserns: false }
    probe = probeWith(features)
  }
  if (probe.status !== 0) {
    const detail = (probe.stderr || probe.error?.message || `exit ${probe.status}`).trim()
    return {
      name: "bubblewrap",
      reason:
        `bubblewrap at ${found.file} cannot start a sandbox here (${detail}); unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1, or user.max_user_namespaces > 0)`
    }
  }
  return {
    backend: {
      name: "bubblewrap",
      wrap: (request) => Effect.succeed({ file: found.file, args: bubblewrapArgs(request, systemPaths, features) })
    }
  }
}

const SANDBOX_EXEC = "/usr/bin/sandbox-exec"

/**
 * macOS: `sandbox-exec -f <profile>` with a profile rendered per job into
 * `<state>/sandbox/`, which the profile itself does not let the job see.
 */
const detectMacos = (stateDir: string) =>
  Effect.gen(function*() {
    if (!isExecutableFile(SANDBOX_EXEC)) {
      return {
        name: "sandbox-exec",
        reason: `${SANDBOX_EXEC} is missing: it ships with macOS; check the system installation`
      } as Detected
    }
    const fs_ = yield* FileSystem.FileSystem
    const fragments = yield* loadSeatbeltFragments(path.join(packageRoot, "profiles"))
    const profilesDir = path.join(stateDir, "sandbox")
    yield* fs_.makeDirectory(profilesDir, { recursive: true, mode: 0o700 })
    const backend: Backend = {
      name: "sandbox-exec",
      wrap: (request) =>
        writeSeatbeltProfile(
          fragments,
          {
            readOnlyPaths: request.readPaths,
            writablePaths: [request.cellDir, request.tmpDir],
            network: request.network
          },
          path.join(profilesDir, `${request.jobId}.sb`)
        ).pipe(
          Effect.map(() => ({
            file: SANDBOX_EXEC,
            // env -i runs inside the sandbox and sets the job's variables
            // there, so none of them (DYLD_INSERT_LIBRARIES, …) reach sandbox-exec.
            args: [
              "-f",
              path.join(profilesDir, `${request.jobId}.sb`),
              "/usr/bin/env",
              "-i",
              ...Object.entries(request.env).map(([name, value]) => `${name}=${value}`),
              ...request.argv
            ]
          })),
          Effect.mapError((error) =>
            new SandboxStartError({ message: `cannot render the sandbox profile: ${error.message}` })
          ),
          Effect.provideService(FileSystem.FileSystem, fs_)
        )
    }
    return { backend } as Detected
  }).pipe(
    Effect.catchAll((error) =>
      Effect.succeed<Detected>({ name: "sandbox-exec", reason: `cannot load the sandbox profiles: ${error.message}` })
    )
  )

const detectBackend = (stateDir: string): Effect.Effect<Detected, never, FileSystem.FileSystem> =>
  process.platform === "linux"
    ? Effect.sync(detectLinux)
    : process.platform === "darwin"
    ? detectMacos(stateDir)
    : Effect.succeed({ name: "none", reason: `no sandbox backend for platform ${process.platform}` })

const onceExit = (child: ChildProcess): Effect.Effect<ProcessExit> => {
  // Registered at spawn so an exit that happens before anyone awaits is not missed.
  const exited = new Promise<ProcessExit>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode })
    } else child.once("exit", (code, signal) => resolve({ code, signal }))
  })
  return Effect.promise(() => exited)
}

/** A started leader: its pid, its stdin pipe (when asked for), and its exit. */
interface Leader {
  readonly pid: number
  readonly stdin: Writable | null
  readonly exit: Effect.Effect<ProcessExit>
}

const OUTPUT_FILE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC |
  fs.constants.O_NOFOLLOW

/** The job's output files could not be created: what the OS said, in words. */
const outputFilesError = (code: string, description: string) =>
  new OutputFilesError({ code, message: code === "ENOSPC" ? "no space left on device" : `${code}: ${description}` })

/**
 * Creates the job's output files (0600) for child_process, which takes
 * descriptors; posix_spawn has the child create them. The daemon's copies
 * are closed once the child holds its own.
 */
const openOutputFiles = (paths: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const opened: Array<number> = []
        try {
          // Never through a symlink, as posix_spawn's file actions (PosixSpawn's CREATE_FLAGS).
          for (const file of paths) opened.push(fs.openSync(file, OUTPUT_FILE_FLAGS, 0o600))
          return opened
        } catch (error) {
          opened.forEach((fd) => fs.closeSync(fd))
          throw error
        }
      },
      catch: (error) => {
        const { code, message } = error as NodeJS.ErrnoException
        return outputFilesError(code ?? "EIO", message)
      }
    }),
    (fds) => Effect.sync(() => fds.forEach((fd) => fs.closeSync(fd)))
  )

/** Starts through child_process: a job with a stdin pipe, or where posix_spawn is not at hand. */
const spawnWithNode = (
  file: string,
  args: ReadonlyArray<string>,
  request: SandboxRequest,
  cwd: string,
  env: Readonly<Record<string, string>>,
  statusPath: string | null
) =>
  Effect.flatMap(
    openOutputFiles([request.stdoutPath, request.stderrPath, ...(statusPath === null ? [] : [statusPath])]),
    ([stdoutFd, stderrFd, statusFd]) =>
      Effect.async<Leader, SpawnError>((resume) => {
        let child: ChildProcess
        try {
          child = spawn(file, args, {
            cwd,
            env,
            // The job writes its logs itself through these descriptors: no pipe
            // through the daemon, so a daemon crash loses no output.
            // Descriptor 3 only for a launcher that writes the job's status there.
            stdio: [request.stdinPipe === true ? "pipe" : "ignore", stdoutFd!, stderrFd!, statusFd ?? "ignore"],
            // Its own process group (and session), so the whole tree can be signalled.
            detached: true
          })
        } catch (error) {
          // Thrown synchronously for arguments the OS cannot take, e.g. a NUL byte in argv or env.
          return resume(
            Effect.fail(new SpawnError({ message: `cannot start ${request.argv[0]}: ${(error as Error).message}` }))
          )
        }
        const leader = (): Leader => ({ pid: child.pid!, stdin: child.stdin, exit: onceExit(child) })
        if (child.pid !== undefined) return resume(Effect.succeed(leader()))
        child.once(
          "error",
          (error) =>
            resume(Effect.fail(new SpawnError({ message: `cannot start ${request.argv[0]}: ${error.message}` })))
        )
      })
  ).pipe(Effect.scoped)

/** Starts through posix_spawn on a worker thread; a failure says whether the files or the command failed. */
const spawnWithPosix = (spawner: PosixSpawner, plan: SpawnRequest) =>
  Effect.async<Spawned | SpawnFailure>((resume) => spawner.spawn(plan, (result) => resume(Effect.succeed(result))))

/**
 * Starts the job's leader (the command, or its sandbox launcher) detached,
 * with its output going straight to its log files (and, for a launcher
 * that records the job's exit, its status file as descriptor 3). `file`
 * is the executable as resolved on the job's PATH; `argv` its whole
 * argument vector, whose first element names it as the job gave it.
 */
const spawnDetached = (
  file: string,
  argv: readonly [string, ...Array<string>],
  request: SandboxRequest,
  cwd: string,
  env: Readonly<Record<string, string>>,
  statusPath: string | null
) =>
  Effect.gen(function*() {
    const spawner = request.stdinPipe === true ? undefined : posixSpawner()
    const plan: SpawnRequest = {
      file,
      argv,
      env,
      cwd,
      stdoutPath: request.stdoutPath,
      stderrPath: request.stderrPath,
      statusPath
    }
    if (spawner !== undefined && spawnable(plan)) {
      const spawned = yield* spawnWithPosix(spawner, plan)
      if ("pid" in spawned) {
        return { pid: spawned.pid, stdin: null, exit: Effect.promise(() => spawned.exit) } satisfies Leader
      }
      if (spawned.stage === "files") return yield* outputFilesError(spawned.code, spawned.description)
      // A script without `#!`: execvp (child_process) runs it with /bin/sh, posix_spawn refuses it.
      if (spawned.code !== "ENOEXEC") {
        return yield* new SpawnError({
          message: `cannot start ${request.argv[0]}: spawn ${argv[0]} ${spawned.code} (${spawned.description})`
        })
      }
    }
    // As before posix_spawn: child_process finds argv[0] on the PATH of `env` itself.
    return yield* spawnWithNode(argv[0], argv.slice(1), request, cwd, env, statusPath)
  }).pipe(
    Effect.tap((leader) => Effect.annotateCurrentSpan({ pid: leader.pid })),
    hotSpan("job.spawn", { "planter.job.id": request.jobId, "process.executable.path": file })
  )

export const make = Effect.fn("SandboxRunner.make")(function*(mode: SandboxMode, stateDir: string) {
  const detected: Detected = mode === "disabled"
    ? { name: "none", reason: "sandbox mode is disabled" }
    : yield* detectBackend(stateDir)
  const status: SandboxStatus = "backend" in detected
    ? { mode, backend: detected.backend.name, available: true, unavailableReason: null }
    : {
      mode,
      backend: detected.name,
      available: false,
      unavailableReason: mode === "disabled" ? null : detected.reason
    }
  if (!status.available && mode !== "disabled") {
    yield* Effect.logWarning(`sandbox unavailable (${mode} mode): ${status.unavailableReason}`)
  }

  const startUntraced = Effect.fnUntraced(function*(request: SandboxRequest) {
    const executable = resolveExecutable(request.argv[0], request.env, request.cwd)
    if (executable === undefined) {
      return yield* new SpawnError({
        message: `cannot start ${request.argv[0]}: not found${
          request.argv[0].includes("/") ? "" : " on the job's PATH"
        } or not executable`
      })
    }
    const wrapped = "backend" in detected ? yield* Effect.either(detected.backend.wrap(request)) : undefined
    if (wrapped !== undefined && Either.isRight(wrapped) && "backend" in detected) {
      // The marker lets a restarted daemon find a launcher whose pid it never recorded.
      const launcherEnv = { ...LAUNCHER_ENV, [JOB_MARKER_ENV]: request.jobId }
      const leader = yield* spawnDetached(
        wrapped.right.file,
        [wrapped.right.file, ...wrapped.right.args],
        request,
        "/",
        launcherEnv,
        detected.backend.name === "bubblewrap" ? request.statusPath : null
      )
      return started(
        leader,
        new JobSandbox({ mode, backend: detected.backend.name, network: request.network, fallback_reason: null }, true)
      )
    }
    const reason = "reason" in detected
      ? detected.reason
      : wrapped !== undefined && Either.isLeft(wrapped)
      ? wrapped.left.message
      : "no sandbox"
    if (mode === "enforced") {
      return yield* new SandboxStartError({
        message: `the sandbox is unavailable and the daemon runs in enforced mode: ${reason}`
      })
    }
    if (mode === "permissive") {
      yield* Effect.logWarning(`job ${request.jobId} runs unsandboxed: ${reason}`)
    }
    const leader = yield* spawnDetached(executable, request.argv, request, request.cwd, request.env, null)
    return started(
      leader,
      new JobSandbox({
        mode,
        backend: "none",
        network: request.network,
        fallback_reason: mode === "permissive" ? reason : null
      }, true)
    )
  })

  // The span Effect.fn would name, made as the other spans on a job's start are (HotSpan).
  const start = (request: SandboxRequest) => startUntraced(request).pipe(hotSpan("SandboxRunner.start"))

  return SandboxRunner.of({ status, start })
})

/**
 * The sandbox a job got is built unchecked (its fields are the daemon's own: the configured mode, a backend
 * name, the request's decoded network policy); markJobRunning encodes it through its schema before it is stored.
 */
const started = (leader: Leader, sandbox: JobSandbox): StartedProcess => ({ ...leader, sandbox })

export const layer = Layer.effect(
  SandboxRunner,
  Effect.flatMap(DaemonConfig, (config) => make(config.sandboxMode, config.stateDir))
).pipe(Layer.provide(NodeFileSystem.layer))
