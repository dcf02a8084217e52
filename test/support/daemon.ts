import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root; integration tests run the built binaries under dist/. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
export const planterBin = path.join(repoRoot, "dist", "planter.mjs")
/** The `planter` bin as it ships: a shell wrapper that starts the CLI from its V8 startup snapshot when it can. */
export const planterCommand = path.join(repoRoot, "dist", "planter")
/** The daemon as it ships: the bundle the `planterd` bin names. */
export const planterdBin = path.join(repoRoot, "dist", "planterd.mjs")
/** The V8 flags the bin's `#!` line (src/cli/planterdLauncher.ts) gives node: a 1 MiB young generation, the old generation grown by 20 % over what a collection kept (docs/benchmarks.md). */
export const planterdNodeFlags = ["--max-semi-space-size=1", "--heap-growing-percent=20"] as const

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `node <script> …args` to its end and collects its output; SIGKILLs it past the timeout. */
export const runNodeScript = (
  script: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number; readonly cwd?: string } = {}
): Promise<CliResult> => runProgram(process.execPath, [script, ...args], options, path.basename(script))

/** Runs `file …args` to its end and collects its output; SIGKILLs it past the timeout. */
export const runProgram = (
  file: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number; readonly cwd?: string } = {},
  name = path.basename(file)
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {})
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (data) => (stdout += data))
    child.stderr.on("data", (data) => (stderr += data))
    const timeoutMs = options.timeoutMs ?? 20_000
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(
        new Error(`${name} ${args.join(" ")} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`)
      )
    }, timeoutMs)
    // "close", not "exit": output still in the pipes arrives after the process has exited.
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** Runs `planter` (the bin as it ships: dist/planter) against `socketPath` and collects its output. */
export const runCli = (
  socketPath: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number; readonly cwd?: string } = {}
): Promise<CliResult> => runProgram(planterCommand, ["--socket", socketPath, ...args], options, "planter")

/**
 * Starts `planter …` (the bin as it ships) without waiting for it: for Ctrl-C, SIGTERM, following commands and a
 * daemon that goes away. The caller stops it (by its pid, through `child`) and awaits `exited`.
 */
export const startCli = (socketPath: string, args: ReadonlyArray<string>) => {
  const child = spawn(planterCommand, ["--socket", socketPath, ...args], { stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (data) => (stdout += data))
  child.stderr!.on("data", (data) => (stderr += data))
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
  return { child, exited, stdout: () => stdout, stderr: () => stderr }
}

/** Runs `planter --json …` and parses its one JSON document. */
export const runJson = async <A = any>(socketPath: string, args: ReadonlyArray<string>): Promise<A> => {
  const result = await runCli(socketPath, ["--json", ...args])
  if (result.code !== 0) {
    throw new Error(`planter ${args.join(" ")} exited ${result.code}: ${result.stdout}${result.stderr}`)
  }
  return JSON.parse(result.stdout) as A
}

const tempDirs: Array<string> = []

/** A fresh temp dir, removed by `stopAllDaemons` at the end of the test file. */
export const makeTempDir = (prefix = "planter-test-") => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

export const socketAnswers = (socketPath: string) =>
  new Promise<boolean>((resolve) => {
    const connection = net.createConnection({ path: socketPath })
    connection.once("connect", () => {
      connection.destroy()
      resolve(true)
    })
    connection.once("error", () => resolve(false))
  })

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** True while `pid` exists and is not a zombie (a killed orphan can linger as one until init reaps it). */
export const pidAlive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return false
  }
}

export const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(20)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

export interface DaemonOptions {
  readonly stateDir?: string
  readonly socketPath?: string
  readonly args?: ReadonlyArray<string>
  readonly env?: NodeJS.ProcessEnv
  /**
   * Run planterd as this uid (and the same gid, no supplementary groups)
   * through `setpriv`, which execs node: the child's pid is the daemon's.
   * Needs root. A state dir made here is chowned to it; a `stateDir` or a
   * socket's directory given by the caller must already be its.
   */
  readonly user?: number
  /** Start planterd with this umask (through `sh -c 'umask …; exec …'`, which keeps the pid). */
  readonly umask?: number
}

export interface TestDaemon {
  readonly stateDir: string
  readonly socketPath: string
  readonly process: ChildProcess
  readonly pid: number
  /** Everything the daemon wrote to stdout and stderr so far. */
  readonly output: () => string
  readonly cli: (
    args: ReadonlyArray<string>,
    options?: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number }
  ) => Promise<CliResult>
  readonly json: <A = any>(args: ReadonlyArray<string>) => Promise<A>
  /** Sends `signal` and waits for the daemon to exit; answers its exit code. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

const started: Array<TestDaemon> = []

/** The command line that starts planterd as `options` asks: node, under setpriv and/or a umask wrapper. */
const daemonCommand = (options: DaemonOptions, daemonArgs: ReadonlyArray<string>): [string, Array<string>] => {
  let command: Array<string> = [process.execPath, ...planterdNodeFlags, planterdBin, ...daemonArgs]
  if (options.user !== undefined) {
    command = ["setpriv", `--reuid=${options.user}`, `--regid=${options.user}`, "--clear-groups", ...command]
  }
  if (options.umask !== undefined) {
    command = [
      "/bin/sh",
      "-c",
      `umask ${options.umask.toString(8).padStart(3, "0")} && exec "$@"`,
      "planterd-umask",
      ...command
    ]
  }
  return [command[0]!, command.slice(1)]
}

/** Spawns planterd as `options` asks, without waiting for it to answer; registered for stopAllDaemons. */
const launchDaemon = (options: DaemonOptions) => {
  const stateDir = options.stateDir ?? makeTempDir()
  if (options.stateDir === undefined && options.user !== undefined) fs.chownSync(stateDir, options.user, options.user)
  const socketPath = options.socketPath ?? path.join(stateDir, "planterd.sock")
  const args = options.args ?? []
  const withMode = args.includes("--sandbox-mode") ? args : ["--sandbox-mode", "disabled", ...args]
  const [file, fileArgs] = daemonCommand(options, ["--state-dir", stateDir, "--socket", socketPath, ...withMode])
  const child = spawn(file, fileArgs, {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout!.on("data", (data) => (output += data))
  child.stderr!.on("data", (data) => (output += data))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const daemon: TestDaemon = {
    stateDir,
    socketPath,
    process: child,
    pid: child.pid!,
    output: () => output,
    cli: (cliArgs, cliOptions) => runCli(socketPath, cliArgs, cliOptions),
    json: (cliArgs) => runJson(socketPath, cliArgs),
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    }
  }
  started.push(daemon)
  return daemon
}

/** Waits until `daemon` answers on its socket ("answered") or exits ("exited"). */
const awaitStart = async (daemon: TestDaemon, timeoutMs = 15_000): Promise<"answered" | "exited"> => {
  const deadline = Date.now() + timeoutMs
  while (!(await socketAnswers(daemon.socketPath))) {
    if (daemon.process.exitCode !== null || daemon.process.signalCode !== null) return "exited"
    if (Date.now() > deadline) throw new Error(`planterd did not answer on ${daemon.socketPath}:\n${daemon.output()}`)
    await sleep(20)
  }
  return "answered"
}

/**
 * Starts a real planterd on a temp state dir and socket and waits until it
 * answers. Sandbox mode defaults to `disabled` unless `args` says otherwise.
 */
export const startDaemon = async (options: DaemonOptions = {}): Promise<TestDaemon> => {
  const daemon = launchDaemon(options)
  if ((await awaitStart(daemon)) === "exited") {
    throw new Error(`planterd exited with ${daemon.process.exitCode} at start:\n${daemon.output()}`)
  }
  return daemon
}

/**
 * Starts planterd when it is expected to refuse to start: answers its exit
 * code and output. If it starts answering instead, it is stopped and the
 * answer says so (`code: "answered"`), so the test fails with what happened.
 */
export const startDaemonExpectingRefusal = async (
  options: DaemonOptions = {}
): Promise<{ readonly code: number | null | "answered"; readonly output: string }> => {
  const daemon = launchDaemon(options)
  if ((await awaitStart(daemon)) === "answered") {
    await daemon.stop("SIGTERM")
    return { code: "answered", output: daemon.output() }
  }
  return { code: await daemon.stop(), output: daemon.output() }
}

/** Stops every daemon this test file started (by pid), which kills their job trees, and removes the temp dirs it made. */
export const stopAllDaemons = async () => {
  const daemons = started.splice(0)
  await Promise.all(daemons.map((daemon) => daemon.stop("SIGTERM")))
  const dirs = new Set([...daemons.map((daemon) => daemon.stateDir), ...tempDirs.splice(0)])
  // Every dir gets its try, even after one fails (e.g. something still mounted in it); the first failure is reported.
  const failures: Array<unknown> = []
  for (const dir of dirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch (error) {
      failures.push(error)
    }
  }
  if (failures.length > 0) throw failures[0]
}

/** Polls `planter job status` until the job has ended; answers its final record. */
export const waitForJobEnd = async <A extends { readonly status: string }>(
  daemon: TestDaemon,
  id: string,
  timeoutMs = 20_000
): Promise<A> => {
  let job: A | undefined
  await waitFor(`${id} to end`, async () => {
    job = await daemon.json<A>(["job", "status", id])
    return job.status === "exited"
  }, timeoutMs)
  return job!
}
