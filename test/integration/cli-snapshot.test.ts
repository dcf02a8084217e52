/**
 * The `planter` bin (dist/planter) starts the CLI from a V8 startup snapshot
 * that the build made with the very node binary about to run it, and
 * otherwise from dist/planter.mjs. Everything a run depends on (argv, env,
 * cwd, whether stdout is a terminal or a file, random ids, the clock) must
 * be read when the command runs, never the values frozen in the snapshot at
 * build time. `sh -x` shows which command line the wrapper chose.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import {
  makeTempDir,
  planterCommand,
  repoRoot,
  runProgram,
  startDaemon,
  stopAllDaemons,
  waitForJobEnd
} from "../support/daemon.js"

const dist = path.join(repoRoot, "dist")
const blob = path.join(dist, "planter.snapshot.blob")
const version = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")).version as string
/** Where the build can make a snapshot (node ≥ 20 on Linux); elsewhere the bin always takes the plain path. */
const snapshotExpected = process.platform === "linux"
/** No NODE_OPTIONS, which would send the wrapper to the plain path. */
const plainEnv = { NODE_OPTIONS: "" }

let daemon: TestDaemon

beforeAll(async () => {
  daemon = await startDaemon()
  await daemon.json(["create", "--name", "snap"])
})

afterAll(async () => {
  await stopAllDaemons()
})

/** Runs the wrapper under `sh -x`: the result, and the `exec` line it chose. */
const traced = async (
  bin: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string } = {}
) => {
  const result = await runProgram("/bin/sh", ["-x", bin, ...args], { ...options, env: { ...plainEnv, ...options.env } })
  const exec = result.stderr.split("\n").filter((line) => line.startsWith("+ exec ")).at(-1) ?? ""
  return { ...result, exec }
}

const versionLines = () => [`planter ${version} (protocol `, `planterd ${version} (protocol `]

describe.runIf(snapshotExpected)("the snapshot-started CLI", () => {
  it("was built for this node and is what the bin starts", async () => {
    expect(fs.existsSync(blob)).toBe(true)
    const key = fs.readFileSync(path.join(dist, "planter.snapshot.key"), "utf8").trim()
    const node = execFileSync("sh", ["-c", "command -v node"], { encoding: "utf8" }).trim()
    expect(execFileSync("stat", ["-L", "-c", "%d:%i:%s:%Y:%Z", node], { encoding: "utf8" }).trim()).toBe(key)

    const result = await traced(planterCommand, ["--socket", daemon.socketPath, "version"])
    expect(result.exec).toContain(`--snapshot-blob ${blob} --`)
    expect(result.code).toBe(0)
    for (const line of versionLines()) expect(result.stdout).toContain(line)
  })

  it("reads argv, the environment and the working directory when it runs", async () => {
    // argv: two runs, two different commands and output formats.
    const json = await runProgram(planterCommand, ["--socket", daemon.socketPath, "--json", "version"], {
      env: plainEnv
    })
    expect(JSON.parse(json.stdout).client_version).toBe(version)
    const text = await runProgram(planterCommand, ["version", "--socket", daemon.socketPath], { env: plainEnv })
    expect(text.stdout.startsWith(`planter ${version} `)).toBe(true)

    // env: no --socket, the daemon is found through PLANTER_SOCKET.
    const fromEnv = await runProgram(planterCommand, ["version"], {
      env: { ...plainEnv, PLANTER_SOCKET: daemon.socketPath }
    })
    expect(fromEnv.code).toBe(0)
    expect(fromEnv.stdout).toContain(`planterd ${version}`)
    const unset = await runProgram(planterCommand, ["version"], {
      env: { ...plainEnv, PLANTER_SOCKET: path.join(makeTempDir(), "nothing.sock") }
    })
    expect(unset.code).toBe(3)
    expect(unset.stderr).toContain("nothing.sock")

    // cwd: a relative --socket resolves against the directory the command runs in.
    const relative = await runProgram(planterCommand, ["--socket", path.basename(daemon.socketPath), "version"], {
      env: plainEnv,
      cwd: path.dirname(daemon.socketPath)
    })
    expect(relative.code).toBe(0)
    expect(relative.stdout).toContain(`planterd ${version}`)
  })

  it("sees whether stdout is a terminal (colour, NO_COLOR) or a file (the in-kernel log copy)", async () => {
    const job = await daemon.json(["run", "snap", "--wait", "--", "sh", "-c", "seq 1 20000"])
    await waitForJobEnd(daemon, job.id)
    // A failed job's status is red on a terminal.
    const failed = await daemon.json(["run", "snap", "--", "sh", "-c", "exit 3"])
    await waitForJobEnd(daemon, failed.id)
    const command = `${planterCommand} --socket ${daemon.socketPath} job ls`
    // util-linux `script` gives the command a pseudo-terminal.
    const onTerminal = (env: NodeJS.ProcessEnv) =>
      execFileSync("script", ["-qec", command, "/dev/null"], { encoding: "utf8", env: { ...process.env, ...env } })
    expect(onTerminal({ ...plainEnv, NO_COLOR: "" })).toContain("\x1b[")
    expect(onTerminal({ ...plainEnv, NO_COLOR: "1" })).not.toContain("\x1b[")
    const piped = await runProgram(planterCommand, ["--socket", daemon.socketPath, "job", "ls"], { env: plainEnv })
    expect(piped.stdout).toContain(job.id)
    expect(piped.stdout).not.toContain("\x1b[")

    const expected = Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join("")
    const out = path.join(makeTempDir(), "log.out")
    execFileSync("sh", ["-c", `"$0" --socket "$1" logs "$2" > "$3"`, planterCommand, daemon.socketPath, job.id, out], {
      env: { ...process.env, ...plainEnv }
    })
    expect(fs.readFileSync(out, "utf8")).toBe(expected)
    const toPipe = await runProgram(planterCommand, ["--socket", daemon.socketPath, "logs", job.id], { env: plainEnv })
    expect(toPipe.stdout).toBe(expected)
  })

  it("draws fresh random ids and reads the clock of each run (trace ids, span times)", async () => {
    const spans: Array<{ traceId: string; name: string; startNs: bigint }> = []
    const server = http.createServer((request, response) => {
      let body = ""
      request.on("data", (chunk) => (body += chunk))
      request.on("end", () => {
        for (const resource of JSON.parse(body).resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({ traceId: span.traceId, name: span.name, startNs: BigInt(span.startTimeUnixNano) })
            }
          }
        }
        response.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const ids: Array<string> = []
      for (let run = 0; run < 2; run++) {
        const before = BigInt(Date.now()) * 1_000_000n
        const result = await runProgram(planterCommand, ["--socket", daemon.socketPath, "version"], {
          env: { ...plainEnv, OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
        })
        const after = BigInt(Date.now()) * 1_000_000n
        expect(result.code).toBe(0)
        const traceId = /planter: trace ([0-9a-f]{32})/.exec(result.stderr)?.[1]
        expect(traceId).toBeDefined()
        ids.push(traceId!)
        const command = spans.find((span) => span.traceId === traceId && span.name === "planter version")
        expect(command).toBeDefined()
        // Effect's clock was first read in this run, not when the snapshot was built.
        expect(command!.startNs >= before - 1_000_000_000n && command!.startNs <= after).toBe(true)
      }
      expect(ids[0]).not.toBe(ids[1])
    } finally {
      server.close()
    }
  })

  it("is found through a symlinked bin, as npm links it", async () => {
    const bin = path.join(makeTempDir(), "bin")
    fs.mkdirSync(bin)
    fs.symlinkSync(path.relative(bin, planterCommand), path.join(bin, "planter"))
    const result = await traced(path.join(bin, "planter"), ["--socket", daemon.socketPath, "version"])
    expect(result.exec).toContain("--snapshot-blob")
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`planterd ${version}`)
  })
})

describe("the bin without a usable snapshot", () => {
  /** The wrapper in a directory of its own, beside links to the plain CLI, with `files` added. */
  const wrapperCopy = (files: Record<string, string | Buffer> = {}) => {
    const dir = makeTempDir()
    fs.copyFileSync(planterCommand, path.join(dir, "planter"))
    fs.chmodSync(path.join(dir, "planter"), 0o755)
    fs.symlinkSync(path.join(dist, "planter.mjs"), path.join(dir, "planter.mjs"))
    for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content)
    return path.join(dir, "planter")
  }

  const expectPlain = async (bin: string, env: NodeJS.ProcessEnv = {}) => {
    const result = await traced(bin, ["--socket", daemon.socketPath, "version"], { env })
    expect(result.exec).not.toContain("--snapshot-blob")
    expect(result.exec).toContain(`${path.dirname(bin)}/planter.mjs`)
    expect(result.code).toBe(0)
    for (const line of versionLines()) expect(result.stdout).toContain(line)
  }

  it("runs dist/planter.mjs when there is no blob", async () => {
    await expectPlain(wrapperCopy())
  })

  it("never loads a blob another node built (its key names another binary)", async () => {
    await expectPlain(wrapperCopy({ "planter.snapshot.blob": "not a snapshot", "planter.snapshot.key": "1:2:3:4:5\n" }))
  })

  it.runIf(snapshotExpected)("runs dist/planter.mjs when NODE_OPTIONS could change V8's flags", async () => {
    const result = await traced(planterCommand, ["--socket", daemon.socketPath, "version"], {
      env: { NODE_OPTIONS: "--max-old-space-size=512" }
    })
    expect(result.exec).toContain(`${dist}/planter.mjs`)
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`planterd ${version}`)
  })
})
