/**
 * The CLI as a person and a script meet it (issue 13): `job ls` like
 * `docker ps`, names and labels usable wherever a JOB is, `run --wait`
 * with stdin, Ctrl-C and a daemon that goes away, help and usage errors,
 * housekeeping (`cell show`, `job rm`, `job prune`, log retention), the
 * README's client example, `npm start` and one signal rule under bubblewrap.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import {
  makeTempDir,
  pidAlive,
  planterBin,
  repoRoot,
  runCli,
  runNodeScript,
  sleep,
  startCli,
  startDaemon,
  stopAllDaemons,
  waitFor,
  waitForJobEnd
} from "../support/daemon.js"
import { bwrapEnv, sandboxDescribe } from "../support/sandbox.js"

const SLOW = 120_000

let daemon: TestDaemon

beforeAll(async () => {
  daemon = await startDaemon({ args: ["--kill-grace-ms", "300"] })
  await daemon.json(["create", "--name", "demo"])
})

afterAll(async () => {
  await stopAllDaemons()
})

describe("job ls reads like docker ps", () => {
  it("shows names, cells by name, status words, relative start and duration, without colour when piped", async () => {
    const ok = await daemon.json(["run", "demo", "--wait", "--name", "ok-job", "--", "true"])
    const three = await daemon.json(["run", "demo", "--", "sh", "-c", "exit 3"])
    const long = await daemon.json(["run", "demo", "--name", "sleeper", "--", "sleep", "30"])
    await daemon.cli(["job", "kill", "sleeper"])
    const failed = await waitForJobEnd<any>(daemon, three.id)
    expect(failed).toMatchObject({ exit_code: 3, outcome: "exited" })
    const killed = await waitForJobEnd<any>(daemon, long.id)
    // A kill is told from an exit in --json by `outcome`; `status` keeps its shape.
    expect(killed).toMatchObject({
      status: "exited",
      outcome: "killed",
      signal: "SIGTERM",
      exit_code: null,
      name: "sleeper"
    })

    const listed = await daemon.cli(["job", "ls"], { env: { FORCE_COLOR: "1" } })
    expect(listed.code).toBe(0)
    expect(listed.stdout).not.toMatch(/\x1b\[/)
    const lines = listed.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^ID\s+NAME\s+CELL\s+STATUS\s+STARTED\s+DURATION\s+COMMAND$/)
    const row = (id: string) => lines.find((line) => line.startsWith(id))!
    expect(row(ok.id)).toMatch(/ ok-job\s+demo\s+exited 0\s+(just now|\d+ seconds? ago)\s+\d+(ms|s)\s+true$/)
    expect(row(three.id)).toMatch(/ -\s+demo\s+exited 3\s/)
    expect(row(long.id)).toMatch(/ sleeper\s+demo\s+killed \(SIGTERM\)\s/)
    const statusColumn = lines[0]!.indexOf("STATUS")
    for (const id of [ok.id, three.id, long.id]) {
      expect(row(id).indexOf(row(id) === row(long.id) ? "killed" : "exited")).toBe(statusColumn)
    }
  }, SLOW)

  it("cell ls tells when a cell was made the same way: relative", async () => {
    const lines = (await daemon.cli(["cell", "ls"])).stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^ID\s+NAME\s+NETWORK\s+CREATED\s+DIR$/)
    expect(lines.find((line) => / demo /.test(line))).toMatch(/ demo\s+allow\s+(just now|\d+ seconds? ago)\s+\//)
  })
})

describe("names and labels", () => {
  it(
    "takes a name wherever a JOB goes, refuses a second running job of that name, and filters by name and label",
    async () => {
      const job = await daemon.json([
        "run",
        "demo",
        "--name",
        "build",
        "--label",
        "branch=main",
        "--label",
        "ci=yes",
        "--",
        "sh",
        "-c",
        "echo built; sleep 30"
      ])
      expect(job).toMatchObject({ name: "build", labels: { branch: "main", ci: "yes" } })

      const again = await daemon.cli(["run", "demo", "--name", "build", "--", "true"])
      expect(again.code).toBe(1)
      expect(again.stderr).toContain(`a job named build is already running in cell demo: ${job.id}`)

      expect(await daemon.json(["job", "status", "build"])).toMatchObject({ id: job.id, status: "running" })
      await waitFor("its output", async () => (await daemon.cli(["logs", "build"])).stdout === "built\n")
      expect((await daemon.json<Array<any>>(["job", "ls", "--label", "branch=main"])).map((j) => j.id)).toEqual([
        job.id
      ])
      expect(await daemon.json(["job", "ls", "--label", "branch=other"])).toEqual([])
      // Jobs exist, none match: the table's stand-in says so, not that there are no jobs at all.
      expect((await daemon.cli(["job", "ls", "--label", "branch=other"])).stdout).toBe(
        "no jobs match: `planter job ls` lists every job\n"
      )
      expect((await daemon.json<Array<any>>(["job", "ls", "--name", "build", "--cell", "demo"])).map((j) => j.id))
        .toEqual([job.id])
      expect((await daemon.json<any>(["job", "kill", "build"])).termination_reason).toBe("terminated_by_user")

      // Once it ended, the name is free again, and names the newest job.
      const next = await daemon.json(["run", "demo", "--name", "build", "--wait", "--", "true"])
      expect((await daemon.json(["job", "status", "build"])).id).toBe(next.id)
    },
    SLOW
  )

  it("refuses a bad name or label as bad usage (exit 2), before anything runs", async () => {
    for (
      const args of [["--name", "job-x"], ["--name", "has space"], ["--label", "novalue"], ["--label", "bad key=1"]]
    ) {
      const result = await daemon.cli(["run", "demo", ...args, "--", "true"])
      expect(result.code, args.join(" ")).toBe(2)
    }
    expect((await daemon.cli(["job", "status", "no such name!"])).code).toBe(2)
    const missing = await daemon.cli(["--json", "logs", "never-named"])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout).error).toMatchObject({
      code: "not_found",
      message: expect.stringContaining("no job named never-named")
    })
  }, SLOW)
})

/** `run --wait` of a job that prints `started` and then sleeps, named `name`, not waited for: for signals. */
const startWaiting = (name: string, flags: ReadonlyArray<string> = []) =>
  startCli(daemon.socketPath, [
    "run",
    "demo",
    "--wait",
    ...flags,
    "--name",
    name,
    "--",
    "sh",
    "-c",
    "echo started; sleep 60"
  ])

describe("run --wait", () => {
  it("forwards stdin with -i, and gives the job none without it", async () => {
    const input = "hello\nworld\n"
    const piped = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [
        planterBin,
        "--socket",
        daemon.socketPath,
        "run",
        "demo",
        "--wait",
        "-i",
        "--",
        "cat"
      ], { stdio: ["pipe", "pipe", "pipe"] })
      let stdout = ""
      child.stdout.on("data", (data) => (stdout += data))
      child.on("close", (code) => resolve({ code, stdout }))
      child.stdin.end(input)
    })
    expect(piped).toEqual({ code: 0, stdout: input })
    const without = await daemon.cli(["run", "demo", "--wait", "--", "cat"])
    expect(without).toMatchObject({ code: 0, stdout: "" })
    expect((await daemon.cli(["run", "demo", "-i", "--", "cat"])).code).toBe(2)
  }, SLOW)

  it("on SIGTERM, as on Ctrl-C, kills the job and says so, and ends with 143", async () => {
    const waiting = startWaiting("sigterm")
    await waitFor("the job's first line", () => waiting.stdout().includes("started"))
    waiting.child.kill("SIGTERM")
    expect(await waiting.exited).toBe(143)
    expect(waiting.stderr()).toMatch(/killed job-\S+: killed \(SIGTERM\) \(terminated_by_user\)/)
    expect(waiting.stderr()).not.toContain("lost the connection")
    expect(await daemon.json(["job", "status", "sigterm"])).toMatchObject({ termination_reason: "terminated_by_user" })
  }, SLOW)

  it("on Ctrl-C kills the job and says so; with --detach-on-interrupt leaves it running and says so", async () => {
    const waiting = startWaiting("ctrl-c")
    await waitFor("the job's first line", () => waiting.stdout().includes("started"))
    waiting.child.kill("SIGINT")
    expect(await waiting.exited).toBe(130)
    expect(waiting.stderr()).toMatch(/interrupted: killing job-\S+/)
    expect(waiting.stderr()).toMatch(/killed job-\S+: killed \(SIGTERM\) \(terminated_by_user\)/)
    expect(await daemon.json(["job", "status", "ctrl-c"])).toMatchObject({
      status: "exited",
      termination_reason: "terminated_by_user"
    })

    const detaching = startWaiting("detached", ["--detach-on-interrupt"])
    await waitFor("the job's first line", () => detaching.stdout().includes("started"))
    detaching.child.kill("SIGINT")
    expect(await detaching.exited).toBe(130)
    expect(detaching.stderr()).toContain("keeps running (--detach-on-interrupt)")
    expect(await daemon.json(["job", "status", "detached"])).toMatchObject({ status: "running" })
    await daemon.cli(["job", "kill", "detached"])
  }, SLOW)

  it("says the daemon went away and ends with exit code 4", async () => {
    const other = await startDaemon({ args: ["--keep-jobs"] })
    await other.json(["create", "--name", "gone"])
    const waiting = startCli(other.socketPath, ["run", "gone", "--wait", "--", "sh", "-c", "echo started; sleep 2"])
    await waitFor("the job's first line", () => waiting.stdout().includes("started"))
    await other.stop("SIGTERM")
    expect(await waiting.exited).toBe(4)
    expect(waiting.stderr()).toContain("lost the connection to planterd")
  }, SLOW)
})

describe("top", () => {
  it("into a pipe prints one snapshot after another, without the terminal's redraw codes", async () => {
    const job = await daemon.json<{ id: string }>(["run", "demo", "--name", "watched", "--", "sleep", "30"])
    const watching = startCli(daemon.socketPath, ["top", "--interval-ms", "100"])
    await waitFor("three snapshots", () => watching.stdout().split("(Ctrl-C to stop)").length > 3)
    watching.child.kill("SIGINT")
    await watching.exited
    await daemon.json(["job", "kill", job.id])
    expect(watching.stdout()).not.toContain("\x1b")
    // A SIGTERM (a CI runner cancelling, `kill`) ends it as shells report it, not as a lost daemon.
    const terminated = startCli(daemon.socketPath, ["top", "--interval-ms", "100"])
    await waitFor("a snapshot", () => terminated.stdout().includes("(Ctrl-C to stop)"))
    terminated.child.kill("SIGTERM")
    expect(await terminated.exited).toBe(143)
    expect(terminated.stderr()).not.toContain("lost the connection")
    const snapshots = watching.stdout().split("\n\n")
    expect(snapshots.length).toBeGreaterThanOrEqual(3)
    for (const snapshot of snapshots.filter((text) => text.trim() !== "")) {
      expect(snapshot).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z {2}\(Ctrl-C to stop\)\n/)
      expect(snapshot).toContain(job.id)
    }
  }, SLOW)
})

describe("help and usage errors", () => {
  it("prints short plain help when piped, with the full command path and no boilerplate", async () => {
    const help = await runCli(daemon.socketPath, ["run", "--help"])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("Usage: planter run CELL")
    expect(help.stdout).toContain("--detach-on-interrupt")
    expect(help.stdout).not.toMatch(/\x1b\[|A user-defined piece of text|--wizard|--log-level|--completions/)
    expect(help.stdout.split("\n").length).toBeLessThan(30)
  }, SLOW)

  it("suggests the closest command and exits 2 for every kind of bad usage", async () => {
    const typo = await runCli(daemon.socketPath, ["job", "lst"])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain("did you mean `job ls`?")
    const unknownOption = await runCli(daemon.socketPath, ["logs", "x", "--folow"])
    expect(unknownOption).toMatchObject({ code: 2, stderr: expect.stringContaining("did you mean --follow?") })
    const badName = await runCli(daemon.socketPath, ["create", "--name", "bad/name"])
    expect(badName.code).toBe(2)
    const badPath = await runCli(daemon.socketPath, ["create", "--name", "reads", "--read", "/no/such/dir"])
    expect(badPath.code).toBe(2)
    const missingArg = await runCli(daemon.socketPath, ["job", "status"])
    expect(missingArg.code).toBe(2)
    expect(missingArg.stderr).not.toMatch(/\x1b\[/)
  }, SLOW)

  it("prints a bash completion script", async () => {
    const completions = await runNodeScript(planterBin, ["--completions", "bash"])
    expect(completions.code).toBe(0)
    expect(completions.stdout).toContain("complete -F")
  }, SLOW)
})

describe("housekeeping", () => {
  it("shows a cell with its jobs", async () => {
    const shown = await daemon.json(["cell", "show", "demo"])
    expect(shown).toMatchObject({ name: "demo", running_jobs: expect.any(Number), total_jobs: expect.any(Number) })
    expect(shown.total_jobs).toBeGreaterThan(0)
    const text = await daemon.cli(["cell", "show", "demo"])
    expect(text.stdout).toMatch(/jobs:\s+\d+ running, \d+ in all/)
  }, SLOW)

  it("removes a finished job's record and logs, refuses a running one, and prunes by age", async () => {
    await daemon.json(["create", "--name", "tidy"])
    const done = await daemon.json([
      "run",
      "tidy",
      "--wait",
      "--name",
      "done",
      "--",
      "sh",
      "-c",
      "echo out; echo err >&2"
    ])
    const logFile = path.join(daemon.stateDir, "logs", `${done.id}.stdout.log`)
    expect(fs.existsSync(logFile)).toBe(true)
    const running = await daemon.json(["run", "tidy", "--", "sleep", "30"])
    const refused = await daemon.cli(["job", "rm", running.id])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("only a finished job can be removed")
    await daemon.cli(["job", "kill", running.id])

    expect(await daemon.json(["job", "rm", "done"])).toMatchObject({ id: done.id })
    expect(fs.existsSync(logFile)).toBe(false)
    expect((await daemon.cli(["job", "status", done.id])).code).toBe(1)

    const old = await daemon.json(["run", "tidy", "--wait", "--", "true"])
    expect(await daemon.json(["job", "prune", "--older-than", "1h", "--cell", "tidy"])).toEqual({
      removed: [],
      freed_bytes: 0
    })
    await sleep(1100)
    const pruned = await daemon.json(["job", "prune", "--older-than", "1s", "--cell", "tidy"])
    expect([...pruned.removed].sort()).toEqual([old.id, running.id].sort())
    expect(await daemon.json(["job", "ls", "--cell", "tidy"])).toEqual([])
    expect((await daemon.cli(["job", "prune", "--older-than", "soon"])).code).toBe(2)
  }, SLOW)

  it("planterd --log-retention removes finished jobs older than the retention", async () => {
    const first = await startDaemon()
    await first.json(["create", "--name", "kept"])
    const job = await first.json(["run", "kept", "--wait", "--", "echo", "old"])
    await first.stop("SIGTERM")
    await sleep(1100)
    const next = await startDaemon({ stateDir: first.stateDir, args: ["--log-retention", "1s"] })
    await waitFor("retention to remove the old job", async () => (await next.cli(["job", "status", job.id])).code === 1)
    expect(fs.existsSync(path.join(first.stateDir, "logs", `${job.id}.stdout.log`))).toBe(false)
  }, SLOW)
})

describe("scripts", () => {
  it("runs the README's client example as written, and formats a client error in one line", async () => {
    const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8")
    const example = /## Scripts: the typed client[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(example, "the README's client example").toBeDefined()
    // Inside the package, so `planter/client` resolves to it as it does for an installed package.
    const dir = path.join(repoRoot, "dist", `readme-example-${process.pid}`)
    fs.mkdirSync(dir, { recursive: true })
    const script = path.join(dir, "hello.mjs")
    try {
      fs.writeFileSync(script, example!)
      const ran = await runNodeScript(script, [], { env: { PLANTER_SOCKET: daemon.socketPath } })
      expect(ran.stderr).toBe("")
      expect(ran).toMatchObject({ code: 0, stdout: expect.stringContaining("hi") })
      const refused = await runNodeScript(script, [], {
        env: { PLANTER_SOCKET: path.join(makeTempDir(), "none.sock") }
      })
      expect(refused.code).toBe(1)
      expect(refused.stderr.trim().split("\n")).toHaveLength(1)
      expect(refused.stderr).toMatch(/^no_daemon: no planterd is listening/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, SLOW)

  it("npm start runs the daemon itself, and SIGTERM stops it cleanly", async () => {
    const stateDir = makeTempDir()
    const socketPath = path.join(stateDir, "planterd.sock")
    // --ignore-scripts skips the prestart build (the suite built already); `start` itself still runs.
    const npm = spawn("npm", ["start", "--ignore-scripts", "--silent"], {
      cwd: repoRoot,
      env: { ...process.env, PLANTER_STATE_DIR: stateDir, PLANTER_SOCKET: socketPath },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true
    })
    const exited = new Promise<number | null>((resolve) => npm.on("close", (code) => resolve(code)))
    await waitFor("the daemon to answer", async () => (await runCli(socketPath, ["version"])).code === 0, 20_000)
    const health = await runCli(socketPath, ["--json", "health"])
    const daemonPid: number = JSON.parse(health.stdout).pid
    try {
      expect(daemonPid).not.toBe(npm.pid)
      npm.kill("SIGTERM")
      await exited
      await waitFor("planterd to exit with npm", () => !pidAlive(daemonPid), 10_000)
    } finally {
      if (pidAlive(daemonPid)) process.kill(daemonPid, "SIGKILL")
      fs.rmSync(stateDir, { recursive: true, force: true })
    }
  }, SLOW)
})

const describeSandbox = sandboxDescribe()

describeSandbox("one signal rule under bubblewrap", () => {
  it("reports a killed sandboxed job's signal, not 128+N", async () => {
    const sandboxed = await startDaemon({
      args: ["--sandbox-mode", "enforced", "--kill-grace-ms", "300"],
      env: bwrapEnv()
    })
    await sandboxed.json(["create", "--name", "boxed"])
    const job = await sandboxed.json(["run", "boxed", "--", "sleep", "30"])
    expect(job.sandbox.backend).toBe("bubblewrap")
    expect(await sandboxed.json(["job", "kill", job.id, "--force"])).toMatchObject({
      exit_code: null,
      signal: "SIGKILL",
      outcome: "killed"
    })
    const self = await sandboxed.cli(["--json", "run", "boxed", "--wait", "--", "sh", "-c", "kill -TERM $$"])
    expect(self.code).toBe(143)
    expect(JSON.parse(self.stdout)).toMatchObject({ exit_code: null, signal: "SIGTERM", outcome: "killed" })
  }, SLOW)
})
