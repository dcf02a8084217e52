/**
 * Upgrading from the earlier prototype (PBX-M11-T05, PBX-AC-04): its JSON
 * state imported into SQLite by a real planterd at start (in place) and by
 * `planterd import-legacy` (copied from elsewhere), then seen through
 * `planter` exactly as native records are. Each edge the issue lists has a
 * fixture built here; the 10 000-file speed figure is in the benchmark.
 */
import { spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { makeTempDir, pidAlive, planterdBin, runNodeScript, startDaemon, stopAllDaemons } from "../support/daemon.js"

const TIMEOUT = 120_000

/** A copy of the workspace's ../shared/fixtures/legacy-state-sample (see its README for the record shapes). */
const FIXTURE = fileURLToPath(new URL("../fixtures/legacy-state-sample", import.meta.url))
const CELL = "cell-1760000000001"
const BUILD = "job-1760000000002"
const SERVE = "job-1760000000003"

/** better-sqlite3 ships no types here; this is all the test uses of it. */
interface ReadOnlyDb {
  prepare: (sql: string) => { all: (...params: Array<unknown>) => Array<Record<string, unknown>> }
  close: () => void
}
const Database = createRequire(import.meta.url)("better-sqlite3") as new(
  file: string,
  options: { readonly: boolean }
) => ReadOnlyDb

/** Processes this file started itself (stand-ins for strangers that reused a pid), killed at the end. */
const strangers: Array<number> = []

afterAll(async () => {
  await stopAllDaemons()
  for (const pid of strangers) {
    if (pidAlive(pid)) process.kill(pid, "SIGKILL")
  }
})

/** The events journal of the state dir, read beside the daemon. */
const journal = (stateDir: string) => {
  const db = new Database(path.join(stateDir, "planter.db"), { readonly: true })
  try {
    return db.prepare("SELECT kind, cell_id, job_id, detail_json FROM events ORDER BY id").all()
      .map((event) => ({
        kind: String(event.kind),
        cell_id: event.cell_id as string | null,
        job_id: event.job_id as string | null,
        detail: JSON.parse(String(event.detail_json)) as Record<string, unknown>
      }))
  } finally {
    db.close()
  }
}

/** Copies the sample fixture to `dir` (created), writable by its owner as a prototype's state dir would be. */
const copyFixture = (dir: string) => {
  fs.cpSync(FIXTURE, dir, { recursive: true })
  fs.rmSync(path.join(dir, "README.md"))
  makeWritable(dir)
  fs.chmodSync(dir, 0o700)
}
const makeWritable = (dir: string) => {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name)
    if (!entry.isSymbolicLink()) fs.chmodSync(file, entry.isDirectory() ? 0o755 : 0o644)
  }
}

/**
 * Everything under `dir` a change would show in: each entry's type, mode,
 * size, mtime and content hash (or link target). Access times are left out:
 * reading a file is not changing it.
 */
const snapshot = (dir: string) => {
  const entries: Record<string, string> = {}
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name)
    const stat = fs.lstatSync(file)
    const what = stat.isSymbolicLink()
      ? `link ${fs.readlinkSync(file)}`
      : stat.isFile()
      ? `file ${createHash("sha256").update(fs.readFileSync(file)).digest("hex")}`
      : stat.isDirectory()
      ? "dir"
      : "special"
    entries[path.relative(dir, file)] = `${what} mode ${(stat.mode & 0o7777).toString(8)} size ${
      stat.isDirectory() ? "-" : stat.size
    } mtime ${stat.mtimeMs}`
  }
  return entries
}

const record = (file: string, value: unknown) => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, JSON.stringify(value, null, 2))
}

/** A prototype job record as its serde types write it; `extra` overrides fields. */
const jobRecord = (oldRoot: string, id: string, cellId: string, extra: Record<string, unknown> = {}) => ({
  id,
  cell_id: cellId,
  command: { argv: ["/bin/sh", "-c", `echo ${id}`], cwd: null, env: {}, limits: null },
  stdout_path: `${oldRoot}/logs/${id}.stdout.log`,
  stderr_path: `${oldRoot}/logs/${id}.stderr.log`,
  started_at_ms: 1760000300000,
  finished_at_ms: 1760000300100,
  pid: 60000,
  status: { type: "exited", code: 0 },
  termination_reason: "exited",
  ...extra
})

const writeLogs = (stateDir: string, id: string, stdout = `${id} out\n`, stderr = "") => {
  fs.mkdirSync(path.join(stateDir, "logs"), { recursive: true })
  fs.writeFileSync(path.join(stateDir, "logs", `${id}.stdout.log`), stdout)
  fs.writeFileSync(path.join(stateDir, "logs", `${id}.stderr.log`), stderr)
}

/** The daemon's one line about the import, or undefined. */
const importLine = (daemon: TestDaemon) =>
  daemon.output().split("\n").find((line) => line.includes("legacy import from"))

const importLegacy = (args: ReadonlyArray<string>) =>
  runNodeScript(planterdBin, ["import-legacy", ...args], { timeoutMs: 60_000 })

/** A pid that no process holds right now: that of a process that has exited. */
const deadPid = () => {
  const pid = spawnSync("true").pid
  if (pid === undefined || pidAlive(pid)) throw new Error("could not find a dead pid")
  return pid
}

describe("an upgrading user's state dir, imported in place at start", () => {
  it(
    "shows the old cells, jobs and output, imports nothing twice, and changes none of the prototype's files",
    async () => {
      const stateDir = path.join(makeTempDir(), "state")
      copyFixture(stateDir)
      const prototypeFiles = snapshot(stateDir)

      const daemon = await startDaemon({ stateDir })
      const line = importLine(daemon)
      expect(line).toContain(
        `legacy import from ${stateDir}: imported 1 cell(s), 2 job(s), 3 log(s); 1 file(s) skipped: ${stateDir}/logs/${SERVE}.stderr.log (missing`
      )

      expect(await daemon.json(["cell", "ls"])).toEqual([{
        id: CELL,
        name: "website",
        env: { NODE_ENV: "production" },
        read_paths: [],
        network: "allow",
        dir: path.join(stateDir, "cells", CELL),
        created_at_ms: 1760000000001,
        // The prototype recorded no owner: only an admin (the daemon's uid, root) may remove it.
        owner_uid: null,
        // Nor cell default limits.
        limits: null
      }])
      const jobs = await daemon.json(["job", "ls"])
      // Newest first.
      expect(jobs).toEqual([
        expect.objectContaining({
          id: SERVE,
          command: expect.objectContaining({
            argv: ["npm", "run", "serve"],
            limits: { timeout_ms: 3600000, max_rss_bytes: null, max_log_bytes: null }
          }),
          exit_code: null,
          termination_reason: "terminated_by_user",
          finished_at_ms: 1760000260000
        }),
        {
          id: BUILD,
          cell_id: CELL,
          command: {
            argv: ["/bin/sh", "-c", "echo building; echo warn >&2"],
            cwd: path.join(stateDir, "cells", CELL),
            env: { VERBOSE: "1" },
            limits: null
          },
          status: "exited",
          exit_code: 0,
          signal: null,
          termination_reason: "exited",
          pid: 51234,
          pid_start_time: null,
          started_at_ms: 1760000100000,
          finished_at_ms: 1760000100120,
          sandbox: {
            mode: "disabled",
            backend: "none",
            network: "allow",
            fallback_reason: expect.stringContaining("imported from the earlier prototype")
          },
          owner_uid: null,
          usage: null,
          peak_rss_bytes: null,
          cpu_ms: null,
          limit_detail: null,
          name: null,
          labels: {},
          outcome: "exited"
        }
      ])
      expect(await daemon.json(["job", "status", SERVE])).toEqual(jobs[0])
      const table = (await daemon.cli(["job", "ls"])).stdout
      // No name; the cell by its name; a job killed with no exit code or signal recorded reads `killed`.
      expect(table).toMatch(new RegExp(`${BUILD}\\s+-\\s+\\S+\\s+exited 0\\s`))
      expect(table).toMatch(new RegExp(`${SERVE}\\s+-\\s+\\S+\\s+killed\\s`))
      expect((await daemon.cli(["job", "status", SERVE])).stdout).toContain("reason:       terminated_by_user")

      // Logs read from the same offsets as before.
      expect((await daemon.cli(["logs", BUILD])).stdout).toBe("building\n")
      expect((await daemon.cli(["logs", BUILD, "--stderr"])).stdout).toBe("warn\n")
      expect((await daemon.cli(["logs", BUILD, "--offset", "3"])).stdout).toBe("lding\n")
      expect((await daemon.cli(["logs", SERVE])).stdout).toBe(
        fs.readFileSync(path.join(FIXTURE, "logs", `${SERVE}.stdout.log`), "utf8")
      )
      expect(await daemon.json(["logs", SERVE, "--stderr"])).toMatchObject({ data: "", complete: true })

      // The imported cell is a cell like any other: its user's files are where its jobs run.
      const native = await daemon.json(["run", "website", "--wait", "--", "cat", "index.html"])
      expect((await daemon.cli(["logs", native.id])).stdout).toBe(
        fs.readFileSync(path.join(FIXTURE, "cells", CELL, "index.html"), "utf8")
      )
      const all = await daemon.json(["job", "ls", "--cell", "website"])
      expect(all.map((job: any) => job.id)).toEqual([native.id, SERVE, BUILD])
      expect(Object.keys(all[0]).sort()).toEqual(Object.keys(all[2]).sort())
      expect(Object.keys(all[0].command).sort()).toEqual(Object.keys(all[2].command).sort())

      const imports = journal(stateDir).filter((event) => event.kind === "legacy_import")
      expect(imports).toEqual([
        expect.objectContaining({
          detail: expect.objectContaining({ path: stateDir, cells: 1, jobs: 2, logs: 3, skipped: 1 })
        })
      ])

      // A restart keeps everything and imports nothing again.
      const cellsBefore = await daemon.json(["cell", "ls"])
      const jobsBefore = await daemon.json(["job", "ls"])
      expect(await daemon.stop()).toBe(0)
      const again = await startDaemon({ stateDir })
      expect(importLine(again)).toBeUndefined()
      expect(await again.json(["cell", "ls"])).toEqual(cellsBefore)
      expect(await again.json(["job", "ls"])).toEqual(jobsBefore)
      expect(journal(stateDir).filter((event) => event.kind === "legacy_import")).toHaveLength(1)

      // Nothing the prototype wrote was moved, changed or deleted (cell.json stays, harmless, beside the
      // user's files); only cells/ and logs/ themselves are Planter's now (made private, given new logs).
      const after = snapshot(stateDir)
      for (const [file, state] of Object.entries(prototypeFiles)) {
        if (file !== "cells" && file !== "logs") expect({ file, state: after[file] }).toEqual({ file, state })
      }
    },
    TIMEOUT
  )
})

describe("the edges of real prototype state dirs", () => {
  it("imports what it can, reports every file it skips, and never adopts a job by its pid alone", async () => {
    const stateDir = path.join(makeTempDir(), "state")
    const oldRoot = "/Users/bob/.planter/state"
    fs.mkdirSync(stateDir, { mode: 0o700 })
    record(path.join(stateDir, "cells/cell-100/cell.json"), {
      id: "cell-100",
      spec: { name: "edge", env: {} },
      created_at_ms: 1760000000100,
      dir: `${oldRoot}/cells/cell-100`
    })
    fs.mkdirSync(path.join(stateDir, "cells/cell-100/src"))
    fs.writeFileSync(path.join(stateDir, "cells/cell-100/src/main.c"), "int main(void) { return 0; }\n")

    const job = (id: string, extra: Record<string, unknown> = {}, cellId = "cell-100") => {
      record(path.join(stateDir, "jobs", `${id}.json`), jobRecord(oldRoot, id, cellId, extra))
      writeLogs(stateDir, id)
    }
    // Recorded running; its process is long gone.
    const gone = deadPid()
    job("job-201", { status: { type: "running" }, finished_at_ms: null, termination_reason: null, pid: gone })
    // Recorded running, and its pid is alive now: a stranger that reused it, as far as anyone can prove.
    const stranger = spawn("sleep", ["300"], { stdio: "ignore" })
    strangers.push(stranger.pid!)
    job("job-202", { status: { type: "running" }, finished_at_ms: null, termination_reason: null, pid: stranger.pid })
    // An exit without a reason, null and absent; and one the prototype did not understand.
    job("job-203", { status: { type: "exited", code: 1 }, termination_reason: null })
    const { termination_reason: _, ...noReason } = jobRecord(oldRoot, "job-204", "cell-100", {
      status: { type: "exited", code: null }
    })
    record(path.join(stateDir, "jobs/job-204.json"), noReason)
    writeLogs(stateDir, "job-204")
    job("job-205", { status: { type: "exited", code: null }, termination_reason: "unknown" })
    // Cut short by a crash.
    const full = JSON.stringify(jobRecord(oldRoot, "job-206", "cell-100"), null, 2)
    fs.writeFileSync(path.join(stateDir, "jobs/job-206.json"), full.slice(0, 150))
    writeLogs(stateDir, "job-206")
    // Its logs are missing.
    record(
      path.join(stateDir, "jobs/job-207.json"),
      jobRecord(oldRoot, "job-207", "cell-100", {
        command: { argv: ["make"], cwd: `${oldRoot}/cells/cell-100/src`, env: {}, limits: null }
      })
    )
    // Its cell is missing entirely; another's cell dir is there but its cell.json is not.
    job("job-208", {}, "cell-999")
    fs.mkdirSync(path.join(stateDir, "cells/cell-300"), { recursive: true })
    fs.writeFileSync(path.join(stateDir, "cells/cell-300/notes.txt"), "kept\n")
    job("job-209", {}, "cell-300")
    // A record that fails its Schema, a file that is no record, a symlink, a cell.json that is not JSON.
    job("job-210", { status: { type: "paused" } })
    fs.writeFileSync(path.join(stateDir, "jobs/notes.txt"), "todo\n")
    record(path.join(stateDir, "elsewhere/job-211.json"), jobRecord(oldRoot, "job-211", "cell-100"))
    fs.symlinkSync(path.join(stateDir, "elsewhere/job-211.json"), path.join(stateDir, "jobs/job-211.json"))
    fs.mkdirSync(path.join(stateDir, "cells/cell-400"))
    fs.writeFileSync(path.join(stateDir, "cells/cell-400/cell.json"), "<html>not json</html>")
    fs.mkdirSync(path.join(stateDir, "jobs/job-212.json"))
    // Unreadable: only as a user other than root, for whom permissions do not apply.
    const asRoot = process.getuid?.() === 0
    if (!asRoot) {
      job("job-213")
      fs.chmodSync(path.join(stateDir, "jobs/job-213.json"), 0)
    }

    const daemon = await startDaemon({ stateDir })
    const line = importLine(daemon)!
    expect(line).toContain("imported 3 cell(s) (2 placeholder), 8 job(s) (2 lost), 14 log(s)")
    const skipped = [
      ["jobs/job-206.json", "cut short: the JSON ends mid-record"],
      ["logs/job-207.stdout.log", "missing"],
      ["logs/job-207.stderr.log", "missing"],
      ["jobs/job-210.json", "not a prototype job record: status"],
      ["jobs/notes.txt", "not a job record"],
      ["jobs/job-211.json", "a symlink: never followed"],
      ["cells/cell-400/cell.json", "not JSON"],
      ["jobs/job-212.json", "not a job record"],
      ...(asRoot ? [] : [["jobs/job-213.json", "unreadable: permission denied"]])
    ]
    expect(line).toContain(`; ${skipped.length} file(s) skipped: `)
    for (const [file, reason] of skipped) expect(line).toContain(`${path.join(stateDir, file!)} (${reason}`)
    expect(line.split("\n")).toHaveLength(1)

    const status = (id: string) => daemon.json(["job", "status", id])
    expect(await status("job-201")).toMatchObject({
      status: "exited",
      termination_reason: "lost",
      exit_code: null,
      pid: gone,
      pid_start_time: null
    })
    expect(await status("job-202")).toMatchObject({
      status: "exited",
      termination_reason: "lost",
      exit_code: null,
      pid: stranger.pid
    })
    expect(pidAlive(stranger.pid!)).toBe(true) // Never signalled.
    expect((await daemon.json(["health"])).running_jobs).toBe(0)
    expect(await status("job-203")).toMatchObject({ termination_reason: "exited", exit_code: 1 })
    expect(await status("job-204")).toMatchObject({ termination_reason: "exited", exit_code: null })
    expect(await status("job-205")).toMatchObject({ termination_reason: "unknown", exit_code: null })
    expect((await daemon.cli(["job", "status", "job-205"])).stdout).toContain("reason:       unknown")
    expect(await status("job-207")).toMatchObject({
      command: { argv: ["make"], cwd: path.join(stateDir, "cells/cell-100/src") }
    })
    expect(await daemon.json(["logs", "job-207"])).toMatchObject({ data: "", complete: true })
    for (const id of ["job-206", "job-210", "job-211"]) {
      expect((await daemon.cli(["job", "status", id])).stderr).toContain(`no job ${id}`)
    }

    const lostNotes = journal(stateDir).filter((event) => event.kind === "job_lost")
    expect(lostNotes).toEqual([
      expect.objectContaining({
        job_id: "job-201",
        detail: expect.objectContaining({ note: expect.stringContaining(`its pid ${gone} is gone`) })
      }),
      expect.objectContaining({
        job_id: "job-202",
        detail: expect.objectContaining({
          note: expect.stringContaining(
            `pid ${stranger.pid} is alive, but the prototype recorded no process start time`
          )
        })
      })
    ])

    // Jobs of a missing cell are under a placeholder with the cell's id; a cell dir without its record keeps its files.
    const cells = await daemon.json(["cell", "ls"])
    expect(cells.map((cell: any) => [cell.id, cell.name])).toEqual([["cell-100", "edge"], ["cell-300", "legacy-300"], [
      "cell-999",
      "legacy-999"
    ]])
    expect(await status("job-208")).toMatchObject({ cell_id: "cell-999" })
    expect(fs.statSync(path.join(stateDir, "cells/cell-999")).isDirectory()).toBe(true)
    const cat = await daemon.json(["run", "legacy-300", "--wait", "--", "cat", "notes.txt"])
    expect((await daemon.cli(["logs", cat.id])).stdout).toBe("kept\n")

    // A restart imports nothing and says nothing: the skipped files have not changed.
    const jobsBefore = await daemon.json(["job", "ls"])
    await daemon.stop()
    const again = await startDaemon({ stateDir })
    expect(importLine(again)).toBeUndefined()
    expect(await again.json(["job", "ls"])).toEqual(jobsBefore)
    expect(pidAlive(stranger.pid!)).toBe(true)

    // Once the file cut short is whole again, the next start imports it, and only it.
    fs.writeFileSync(path.join(stateDir, "jobs/job-206.json"), full)
    await again.stop()
    const third = await startDaemon({ stateDir })
    expect(importLine(third)).toContain("imported 0 cell(s), 1 job(s), 2 log(s)")
    expect(await third.json(["job", "status", "job-206"])).toMatchObject({ termination_reason: "exited", exit_code: 0 })
    expect((await third.cli(["logs", "job-206"])).stdout).toBe("job-206 out\n")
    expect(journal(stateDir).filter((event) => event.kind === "legacy_import")).toHaveLength(2)
  }, TIMEOUT)
})

describe("planterd import-legacy", () => {
  it(
    "copies another dir's cells and logs, never changing it; a dry run changes nothing; a second run imports nothing",
    async () => {
      const work = makeTempDir()
      const source = path.join(work, "old")
      copyFixture(source)
      // Deeper user files, a symlink (copied as a link, never followed) and a FIFO (not copied, reported).
      fs.mkdirSync(path.join(source, "cells", CELL, "site/assets"), { recursive: true })
      fs.writeFileSync(path.join(source, "cells", CELL, "site/assets/app.js"), "console.log(1)\n")
      fs.chmodSync(path.join(source, "cells", CELL, "site/assets/app.js"), 0o600)
      fs.symlinkSync("/etc/hostname", path.join(source, "cells", CELL, "hostname-link"))
      expect(spawnSync("mkfifo", [path.join(source, "cells", CELL, "pipe")]).status).toBe(0)
      const sourceBefore = snapshot(source)
      const stateDir = path.join(work, "new-state")

      // Dry, into a state dir that does not exist yet: one JSON document, and the dir is still not there.
      const dry = await importLegacy(["--from", source, "--state-dir", stateDir, "--dry-run", "--json"])
      expect(dry.code).toBe(0)
      const dryReport = JSON.parse(dry.stdout)
      expect(dryReport).toMatchObject({
        source,
        state_dir: stateDir,
        dry_run: true,
        cells: 1,
        jobs: 2,
        logs: 3,
        previously_handled: 0
      })
      expect(dryReport.skipped).toEqual([
        { path: path.join(source, "logs", `${SERVE}.stderr.log`), reason: expect.stringMatching(/^missing/) },
        { path: path.join(source, "cells", CELL, "pipe"), reason: "a socket, FIFO or device: not copied" }
      ])
      expect(fs.existsSync(stateDir)).toBe(false)

      const real = await importLegacy(["--from", source, "--state-dir", stateDir, "--json"])
      expect(real.code).toBe(0)
      expect(JSON.parse(real.stdout)).toEqual({ ...dryReport, dry_run: false })
      const cellDir = path.join(stateDir, "cells", CELL)
      expect(fs.readFileSync(path.join(cellDir, "index.html"), "utf8")).toBe(
        fs.readFileSync(path.join(source, "cells", CELL, "index.html"), "utf8")
      )
      expect(fs.readFileSync(path.join(cellDir, "site/assets/app.js"), "utf8")).toBe("console.log(1)\n")
      expect(fs.statSync(path.join(cellDir, "site/assets/app.js")).mode & 0o777).toBe(0o600)
      expect(fs.readlinkSync(path.join(cellDir, "hostname-link"))).toBe("/etc/hostname")
      expect(fs.existsSync(path.join(cellDir, "pipe"))).toBe(false)
      expect(fs.existsSync(path.join(cellDir, "cell.json"))).toBe(false)
      expect(fs.statSync(cellDir).mode & 0o777).toBe(0o700)
      expect(fs.statSync(path.join(stateDir, "logs", `${BUILD}.stdout.log`)).mode & 0o777).toBe(0o600)
      expect(fs.readdirSync(path.join(stateDir, "tmp"))).toEqual([])
      expect(snapshot(source)).toEqual(sourceBefore)

      // Again: nothing new, nothing duplicated.
      const second = await importLegacy(["--from", source, "--state-dir", stateDir])
      expect(second.code).toBe(0)
      expect(second.stdout).toBe(
        `legacy import from ${source}: imported 0 cell(s), 0 job(s), 0 log(s); 3 record file(s) left alone (an earlier import dealt with them); 0 file(s) skipped\n`
      )

      // A dry run on a state dir that exists changes nothing in it, the database included.
      const stateBefore = snapshot(stateDir)
      const dryAgain = await importLegacy(["--from", source, "--state-dir", stateDir, "--dry-run", "--json"])
      expect(JSON.parse(dryAgain.stdout)).toMatchObject({ dry_run: true, cells: 0, jobs: 0, previously_handled: 3 })
      expect(snapshot(stateDir)).toEqual(stateBefore)

      // The daemon on that state dir shows what was imported, and imports nothing itself.
      const daemon = await startDaemon({ stateDir })
      expect(importLine(daemon)).toBeUndefined()
      expect((await daemon.json(["cell", "ls"])).map((cell: any) => [cell.id, cell.name, cell.dir])).toEqual([[
        CELL,
        "website",
        cellDir
      ]])
      expect((await daemon.json(["job", "ls"])).map((job: any) => job.id)).toEqual([SERVE, BUILD]) // Newest first.
      expect((await daemon.cli(["logs", BUILD, "--stderr"])).stdout).toBe("warn\n")
      const imports = journal(stateDir).filter((event) => event.kind === "legacy_import")
      expect(imports).toEqual([expect.objectContaining({ detail: expect.objectContaining({ path: source, jobs: 2 }) })])
    },
    TIMEOUT
  )

  it("skips ids that are already in the state dir, and never overwrites them", async () => {
    const work = makeTempDir()
    const stateDir = path.join(work, "state")
    copyFixture(stateDir)
    const first = await startDaemon({ stateDir })
    const original = await first.json(["job", "status", BUILD])
    await first.stop()

    // The same ids from another copy, one of them changed.
    const other = path.join(work, "other")
    copyFixture(other)
    const changed = JSON.parse(fs.readFileSync(path.join(other, "jobs", `${BUILD}.json`), "utf8"))
    changed.command.argv = ["rm", "-rf", "/"]
    fs.writeFileSync(path.join(other, "jobs", `${BUILD}.json`), JSON.stringify(changed))
    fs.writeFileSync(path.join(other, "logs", `${BUILD}.stdout.log`), "overwritten?\n")

    const result = await importLegacy(["--from", other, "--state-dir", stateDir, "--json"])
    expect(result.code).toBe(0)
    const report = JSON.parse(result.stdout)
    expect(report).toMatchObject({ cells: 0, jobs: 0, logs: 0 })
    expect(report.skipped).toEqual([
      {
        path: path.join(other, "cells", CELL, "cell.json"),
        reason: `a cell with the id ${CELL} already exists in the state dir: it is not overwritten`
      },
      {
        path: path.join(other, "jobs", `${BUILD}.json`),
        reason: `a job with the id ${BUILD} already exists in the state dir: it is not overwritten`
      },
      {
        path: path.join(other, "jobs", `${SERVE}.json`),
        reason: `a job with the id ${SERVE} already exists in the state dir: it is not overwritten`
      }
    ])

    const daemon = await startDaemon({ stateDir })
    expect(await daemon.json(["job", "status", BUILD])).toEqual(original)
    expect((await daemon.cli(["logs", BUILD])).stdout).toBe("building\n")
  }, TIMEOUT)

  it("refuses while a daemon holds the state dir, and changes nothing there", async () => {
    const source = path.join(makeTempDir(), "old")
    copyFixture(source)
    const daemon = await startDaemon()
    for (const dry of [[], ["--dry-run"]]) {
      const refused = await importLegacy(["--from", source, "--state-dir", daemon.stateDir, ...dry])
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(
        `planterd import-legacy: planterd (pid ${daemon.pid}, socket ${daemon.socketPath}) already uses the state dir ${daemon.stateDir}: kill ${daemon.pid} first`
      )
      expect(refused.stdout).toBe("")
    }
    // planterd's own --state-dir, given before the subcommand, means the same state dir.
    const before = await runNodeScript(planterdBin, ["--state-dir", daemon.stateDir, "import-legacy", "--from", source])
    expect(before.code).toBe(1)
    expect(before.stderr).toContain(`already uses the state dir ${daemon.stateDir}`)
    const asJson = await importLegacy(["--from", source, "--state-dir", daemon.stateDir, "--json"])
    expect(asJson.code).toBe(1)
    expect(JSON.parse(asJson.stdout)).toEqual({
      error: { code: "conflict", message: expect.stringContaining("already uses the state dir") }
    })
    expect(await daemon.json(["cell", "ls"])).toEqual([])
    expect(fs.readdirSync(path.join(daemon.stateDir, "cells"))).toEqual([])
    expect(await daemon.json(["health"])).toMatchObject({ ok: true })
  }, TIMEOUT)

  it("says so when the dir holds no prototype state", async () => {
    const empty = makeTempDir()
    const result = await importLegacy(["--from", empty, "--state-dir", path.join(empty, "state"), "--json"])
    expect(result.code).toBe(1)
    expect(JSON.parse(result.stdout)).toEqual({
      error: {
        code: "invalid_request",
        message: `${empty} holds no prototype state: expected cells/<cell id>/cell.json and jobs/<job id>.json under it`
      }
    })
    expect(fs.existsSync(path.join(empty, "state"))).toBe(false)
  }, TIMEOUT)
})
