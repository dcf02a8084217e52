import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import { Effect, Fiber } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { make as makeClient } from "../rpc/client.js"
import { PROTOCOL_VERSION } from "../rpc/Rpcs.js"
import { makeMsgPack, MAX_REQUEST_FRAME_BYTES } from "../rpc/Serialization.js"
import { PLANTER_VERSION } from "../rpc/Version.js"
import { hoistGlobalOptions } from "./Argv.js"
import * as CliPlatform from "./CliPlatform.js"
import { command } from "./Commands.js"
import { interpret } from "./Help.js"
import { forEachPage } from "./ListPages.js"
import { encodeJob, jobRows } from "./Output.js"

/**
 * Run once while the CLI's startup snapshot is built (src/cli/snapshot.ts):
 * the code paths of the common commands, so that V8 compiles their
 * functions then and the snapshot keeps the bytecode. V8 compiles a
 * function the first time it is called; a command started from a snapshot
 * of loaded-but-never-run modules spent ~20 ms of the ~55 ms it ran
 * compiling (measured: a snapshot built with --no-lazy ran that much
 * faster, but its 6 MB more of bytecode took as long to load). Compiling
 * only what the common commands run keeps the snapshot small.
 *
 * Two passes, neither printing anything nor reading the process's state
 * (argv, env, stdin, stdout):
 * - command lines parsed by @effect/cli, each handler running up to its
 *   connection, which fails (no socket at that path);
 * - the typed client against a stand-in daemon on a temporary socket that
 *   answers Version, CellList and JobList with the sample records below
 *   (test/unit/WarmUp.test.ts checks they decode as the real answers do),
 *   and the job list rendered as a table and as JSON.
 */
export const warmUp = async (): Promise<void> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "planter-warm-up-"))
  try {
    await parseCommandLines(path.join(dir, "none.sock"))
    const socketPath = path.join(dir, "daemon.sock")
    const daemon = await standInDaemon(socketPath)
    try {
      await Effect.runPromise(Effect.scoped(listJobs(socketPath)))
    } finally {
      daemon.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const parseCommandLines = async (socket: string) => {
  const cli = Command.run(command, { name: "planter", version: PLANTER_VERSION })
  for (
    const args of [
      ["version"],
      ["--json", "health"],
      ["job", "ls"],
      ["job", "ls", "--limit", "5", "--status", "running"],
      ["cell", "ls"],
      ["job", "status", "job-warmup"],
      ["run", "warm-up", "--name", "w", "--", "true"],
      ["logs", "job-warmup"]
    ]
  ) {
    const hoisted = hoistGlobalOptions(["--socket", socket, ...args])
    interpret(hoisted)
    await Effect.runPromise(
      cli(["node", "planter", ...hoisted]).pipe(
        Effect.provideService(CliConfig.CliConfig, CliConfig.make({ showBuiltIns: false })),
        CliPlatform.provide,
        Effect.ignore
      )
    )
  }
}

/** What `planter job ls` asks and does with the answers, minus the printing. */
const listJobs = (socketPath: string) =>
  Effect.gen(function*() {
    const client = yield* makeClient({ socketPath })
    const cells = yield* Effect.fork(client.CellList({ after: null, limit: 1000 }))
    yield* forEachPage(
      { _tag: "first", count: 50 },
      (after, limit) =>
        Effect.map(
          client.JobList({ cell_id: null, status: null, name: null, labels: {}, after, limit }),
          (page) => ({ rows: page.jobs, next: page.next })
        ),
      (jobs) =>
        Effect.map(Effect.orDie(Fiber.join(cells)), (page) => {
          jobRows(jobs, new Map(page.cells.map((cell) => [cell.id, cell.name])))
          JSON.stringify(jobs.map(encodeJob), null, 2)
        })
    )
  })

/** A cell and a job as the daemon encodes them on the wire. */
export const sampleCell = {
  id: "cell-warmup0",
  name: "warm-up",
  env: {},
  read_paths: [],
  network: "allow",
  dir: "/nonexistent/cells/cell-warmup0",
  created_at_ms: 0,
  owner_uid: 0,
  limits: null
}

export const sampleJob = {
  id: "job-warmup0",
  cell_id: "cell-warmup0",
  command: {
    argv: ["true"],
    cwd: "/nonexistent/cells/cell-warmup0",
    env: {},
    limits: { timeout_ms: null, max_rss_bytes: null, max_log_bytes: 1073741824 }
  },
  status: "exited",
  exit_code: 0,
  signal: null,
  termination_reason: "exited",
  pid: 1,
  pid_start_time: "1",
  started_at_ms: 0,
  finished_at_ms: 1,
  sandbox: { mode: "disabled", backend: "none", network: "allow", fallback_reason: null },
  owner_uid: 0,
  usage: null,
  peak_rss_bytes: null,
  cpu_ms: null,
  limit_detail: null,
  name: null,
  labels: {}
}

/** The stand-in daemon's answers, by request tag. */
export const sampleAnswers: Readonly<Record<string, unknown>> = {
  Version: { version: PLANTER_VERSION, protocol_version: PROTOCOL_VERSION },
  CellList: { cells: [sampleCell], next: null },
  JobList: { jobs: [sampleJob], next: null }
}

/** Answers each request from sampleAnswers, in the RPC's msgpack framing; ignores everything else. */
const standInDaemon = (socketPath: string) =>
  new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer((connection) => {
      const parser = makeMsgPack(MAX_REQUEST_FRAME_BYTES).unsafeMake()
      connection.on("error", () => {}) // A client gone mid-answer must not end the snapshot build.
      connection.on("data", (bytes) => {
        for (const message of parser.decode(bytes) as ReadonlyArray<{ _tag: string; id: string; tag: string }>) {
          if (message._tag !== "Request") continue
          const value = sampleAnswers[message.tag]
          const exit = value === undefined
            ? { _tag: "Failure", cause: { _tag: "Die", defect: `no sample answer for ${message.tag}` } }
            : { _tag: "Success", value }
          connection.write(parser.encode({ _tag: "Exit", requestId: message.id, exit }) as Uint8Array)
        }
      })
    })
    server.once("error", reject)
    server.listen(socketPath, () => resolve(server))
  })
