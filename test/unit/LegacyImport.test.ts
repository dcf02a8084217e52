/**
 * The pure half of the prototype import: decoding record files and mapping
 * them onto Planter's cells and jobs (src/services/LegacyImport.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type {
  LegacyCellRecord,
  LegacyJobRecord,
  PlanInput,
  ScannedFile,
  ScannedJob
} from "../../src/services/LegacyImport.js"
import {
  countsLine,
  decodeCellFile,
  decodeJobFile,
  handledBefore,
  mapOutcome,
  planImport,
  rewritePath,
  summaryLine
} from "../../src/services/LegacyImport.js"

/** A copy of the workspace's ../shared/fixtures/legacy-state-sample, kept in the repo so tests run anywhere. */
const FIXTURE = fileURLToPath(new URL("../fixtures/legacy-state-sample", import.meta.url))
const fixtureText = (relative: string) => fs.readFileSync(path.join(FIXTURE, relative), "utf8")

const OLD = "/Users/alice/.planter/state"
const STATE = "/srv/planter/state"
const SOURCE = "/backup/prototype-state"
const NOW = 1_800_000_000_000

const cellRecord = (id: string, name: string, extra: Partial<Record<string, unknown>> = {}) => ({
  id,
  spec: { name, env: { NODE_ENV: "production" } },
  created_at_ms: 1760000000001,
  dir: `${OLD}/cells/${id}`,
  ...extra
})

const jobRecord = (id: string, cellId: string, extra: Record<string, unknown> = {}) => ({
  id,
  cell_id: cellId,
  command: { argv: ["/bin/sh", "-c", "echo hi"], cwd: null, env: { VERBOSE: "1" }, limits: null },
  stdout_path: `${OLD}/logs/${id}.stdout.log`,
  stderr_path: `${OLD}/logs/${id}.stderr.log`,
  started_at_ms: 1760000100000,
  finished_at_ms: 1760000100120,
  pid: 51234,
  status: { type: "exited", code: 0 },
  termination_reason: "exited",
  ...extra
})

const decodedJob = (record: unknown): LegacyJobRecord => Either.getOrThrow(decodeJobFile(JSON.stringify(record)))

const cellFile = (record: unknown, placeId = (record as { id: string }).id): ScannedFile<LegacyCellRecord> => ({
  path: `cells/${placeId}/cell.json`,
  placeId,
  record: decodeCellFile(JSON.stringify(record)),
  fingerprint: "10:1:1"
})

const jobFile = (
  record: unknown,
  options: { placeId?: string; logs?: { stdout: boolean; stderr: boolean } } = {}
): ScannedJob => {
  const placeId = options.placeId ?? (record as { id: string }).id
  return {
    path: `jobs/${placeId}.json`,
    placeId,
    record: decodeJobFile(JSON.stringify(record)),
    fingerprint: "10:1:1",
    logs: options.logs ?? { stdout: true, stderr: true }
  }
}

const plan = (input: Partial<PlanInput> & Pick<PlanInput, "cells" | "jobs">) =>
  planImport({
    stateDir: STATE,
    source: SOURCE,
    inPlace: false,
    now: NOW,
    sourceCellDirs: new Set(input.cells.map((file) => file.placeId)),
    existing: {
      cells: new Map(),
      cellNames: new Set(),
      jobIds: new Set(),
      targetCellDirs: new Set(),
      targetLogs: new Set()
    },
    livePids: new Set(),
    previouslyHandled: 0,
    ...input
  })

describe("decoding the prototype's record files", () => {
  it("decodes the sample fixture's cell and jobs", () => {
    const cell = Either.getOrThrow(decodeCellFile(fixtureText("cells/cell-1760000000001/cell.json")))
    expect(cell).toMatchObject({ id: "cell-1760000000001", spec: { name: "website", env: { NODE_ENV: "production" } } })
    const killed = Either.getOrThrow(decodeJobFile(fixtureText("jobs/job-1760000000003.json")))
    expect(killed.command.limits).toEqual({ timeout_ms: 3600000, max_rss_bytes: null, max_log_bytes: null })
    expect(killed.status).toEqual({ type: "exited", code: null })
    const built = Either.getOrThrow(decodeJobFile(fixtureText("jobs/job-1760000000002.json")))
    expect(built.command).toMatchObject({
      argv: ["/bin/sh", "-c", "echo building; echo warn >&2"],
      cwd: null,
      limits: null
    })
  })

  it("says a file cut short by a crash is cut short, and an empty one is empty", () => {
    const text = fixtureText("jobs/job-1760000000002.json")
    expect(decodeJobFile(text.slice(0, 120))).toEqual(
      Either.left(expect.stringMatching(/^cut short: the JSON ends mid-record/))
    )
    expect(decodeJobFile(text.slice(0, text.indexOf("\"argv\"") + 9))).toEqual(
      Either.left(expect.stringMatching(/^cut short/))
    )
    for (const end of [1, 50, 150, 300, text.length - 2]) {
      expect(decodeJobFile(text.slice(0, end))).toEqual(Either.left(expect.stringMatching(/^cut short/)))
    }
    expect(decodeJobFile("{\"id\": 1,, \"x\": 2}")).toEqual(Either.left(expect.stringMatching(/^not JSON: /)))
    expect(decodeJobFile("")).toEqual(Either.left(expect.stringMatching(/^empty/)))
    expect(decodeJobFile("not json at all")).toEqual(Either.left(expect.stringMatching(/^not JSON: /)))
  })

  it("names the field of a record that fails its Schema", () => {
    const noArgv = jobRecord("job-1", "cell-1", { command: { argv: [], cwd: null, env: {}, limits: null } })
    expect(decodeJobFile(JSON.stringify(noArgv))).toEqual(
      Either.left(expect.stringMatching(/^not a prototype job record: command\.argv\[0\]: missing/))
    )
    const badStatus = jobRecord("job-1", "cell-1", { status: { type: "paused" } })
    expect(decodeJobFile(JSON.stringify(badStatus))).toEqual(
      Either.left(expect.stringMatching(/^not a prototype job record: status/))
    )
    const { started_at_ms: _, ...noStart } = jobRecord("job-1", "cell-1")
    expect(decodeJobFile(JSON.stringify(noStart))).toEqual(
      Either.left("not a prototype job record: started_at_ms: missing")
    )
    const badId = jobRecord("job-../../etc", "cell-1")
    expect(decodeJobFile(JSON.stringify(badId))).toEqual(
      Either.left(expect.stringMatching(/^not a prototype job record: id: /))
    )
    const badEnv = cellRecord("cell-1", "web", { spec: { name: "web", env: { "BAD-NAME": "x" } } })
    expect(decodeCellFile(JSON.stringify(badEnv))).toEqual(
      Either.left(expect.stringMatching(/^not a prototype cell record: spec\.env/))
    )
    const badLimit = jobRecord("job-1", "cell-1", {
      command: { argv: ["x"], cwd: null, env: {}, limits: { timeout_ms: -5 } }
    })
    expect(decodeJobFile(JSON.stringify(badLimit))).toEqual(Either.left(expect.stringMatching(/command\.limits/)))
  })

  it("reads a missing or null termination reason, and a missing exit code, as absent", () => {
    const { termination_reason: _, ...noReason } = jobRecord("job-1", "cell-1")
    expect(decodedJob(noReason).termination_reason).toBeNull()
    expect(decodedJob(jobRecord("job-1", "cell-1", { termination_reason: null })).termination_reason).toBeNull()
    expect(decodedJob(jobRecord("job-1", "cell-1", { status: { type: "exited" } })).status).toEqual({
      type: "exited",
      code: null
    })
  })
})

describe("mapping a prototype job's end onto Planter's fields", () => {
  const outcome = (extra: Record<string, unknown>, live: ReadonlyArray<number> = []) =>
    mapOutcome(decodedJob(jobRecord("job-1", "cell-1", extra)), NOW, new Set(live))

  it("keeps an exit code and its reason", () => {
    expect(outcome({})).toEqual({
      exit_code: 0,
      termination_reason: "exited",
      finished_at_ms: 1760000100120,
      lostNote: null
    })
    expect(outcome({ status: { type: "exited", code: 3 }, termination_reason: "timeout" })).toMatchObject({
      exit_code: 3,
      termination_reason: "timeout"
    })
  })

  it("keeps a null code with a kill reason null", () => {
    for (const reason of ["terminated_by_user", "forced_kill", "memory_limit", "log_quota"]) {
      expect(outcome({ status: { type: "exited", code: null }, termination_reason: reason })).toMatchObject({
        exit_code: null,
        termination_reason: reason
      })
    }
  })

  it("makes an exit without a reason `exited`, and keeps `unknown` distinguishable", () => {
    expect(outcome({ status: { type: "exited", code: 1 }, termination_reason: null })).toMatchObject({
      exit_code: 1,
      termination_reason: "exited"
    })
    expect(outcome({ status: { type: "exited", code: null }, termination_reason: "unknown" })).toMatchObject({
      exit_code: null,
      termination_reason: "unknown"
    })
  })

  it("makes a job recorded running lost, saying whether its pid is gone", () => {
    const gone = outcome({ status: { type: "running" }, finished_at_ms: null, termination_reason: null, pid: 4242 })
    expect(gone).toMatchObject({ exit_code: null, termination_reason: "lost", finished_at_ms: NOW })
    expect(gone.lostNote).toContain("its pid 4242 is gone")
  })

  it("never adopts a job recorded running whose pid is alive: no start time proves it is the job", () => {
    const alive = outcome({ status: { type: "running" }, finished_at_ms: null, pid: 4242 }, [4242])
    expect(alive).toMatchObject({ termination_reason: "lost", exit_code: null })
    expect(alive.lostNote).toContain("pid 4242 is alive, but the prototype recorded no process start time")
    expect(alive.lostNote).toContain("not adopted and not signalled")
  })
})

describe("rewriting the records' absolute paths", () => {
  const roots = [{ from: `${OLD}/cells/cell-1`, to: `${STATE}/cells/cell-1` }, { from: OLD, to: STATE }]

  it("moves paths under the old state dir to this one, and keeps others as recorded", () => {
    expect(rewritePath(`${OLD}/cells/cell-1/site/build`, roots)).toBe(`${STATE}/cells/cell-1/site/build`)
    expect(rewritePath(`${OLD}/cells/cell-1`, roots)).toBe(`${STATE}/cells/cell-1`)
    expect(rewritePath(`${OLD}/elsewhere`, roots)).toBe(`${STATE}/elsewhere`)
    expect(rewritePath(`${OLD}-other/x`, roots)).toBe(`${OLD}-other/x`)
    expect(rewritePath("/opt/tools", roots)).toBe("/opt/tools")
    expect(rewritePath(`${OLD}/cells/cell-1/../../../../etc`, roots)).toBe("/Users/alice/etc")
  })
})

describe("planning an import", () => {
  it("keeps ids, names, env, times, argv, limits and pid, and rewrites the cell dir and cwd", () => {
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website"))],
      jobs: [
        jobFile(jobRecord("job-2", "cell-1", {
          command: {
            argv: ["npm", "run", "serve"],
            cwd: `${OLD}/cells/cell-1/app`,
            env: { A: "1" },
            limits: { timeout_ms: 3600000, max_rss_bytes: null, max_log_bytes: null }
          }
        })),
        jobFile(jobRecord("job-3", "cell-1", { command: { argv: ["make"], cwd: "sub/dir", env: {}, limits: null } })),
        jobFile(jobRecord("job-4", "cell-1"))
      ]
    })
    expect(result.cells).toEqual([
      expect.objectContaining({
        id: "cell-1",
        name: "website",
        env: { NODE_ENV: "production" },
        dir: `${STATE}/cells/cell-1`,
        created_at_ms: 1760000000001
      })
    ])
    const [serve, make, plain] = result.jobs
    expect(serve).toMatchObject({
      id: "job-2",
      cell_id: "cell-1",
      command: {
        argv: ["npm", "run", "serve"],
        cwd: `${STATE}/cells/cell-1/app`,
        env: { A: "1" },
        limits: { timeout_ms: 3600000, max_rss_bytes: null, max_log_bytes: null }
      },
      status: "exited",
      exit_code: 0,
      termination_reason: "exited",
      pid: 51234,
      pid_start_time: null,
      started_at_ms: 1760000100000,
      finished_at_ms: 1760000100120
    })
    expect(make!.command.cwd).toBe(`${STATE}/cells/cell-1/sub/dir`)
    expect(plain!.command.cwd).toBe(`${STATE}/cells/cell-1`)
    expect(result.report).toMatchObject({ cells: 1, jobs: 3, logs: 6, placeholder_cells: 0, lost_jobs: 0, skipped: [] })
  })

  it("copies cell dirs and logs from the source when importing from elsewhere, and nothing in place", () => {
    const input = { cells: [cellFile(cellRecord("cell-1", "website"))], jobs: [jobFile(jobRecord("job-2", "cell-1"))] }
    expect(plan(input).copies).toEqual([
      { kind: "cell-dir", from: `${SOURCE}/cells/cell-1`, to: `${STATE}/cells/cell-1` },
      { kind: "log", from: `${SOURCE}/logs/job-2.stdout.log`, to: `${STATE}/logs/job-2.stdout.log` },
      { kind: "log", from: `${SOURCE}/logs/job-2.stderr.log`, to: `${STATE}/logs/job-2.stderr.log` }
    ])
    expect(plan({ ...input, source: STATE, inPlace: true }).copies).toEqual([])
  })

  it("imports a job whose log is missing, and reports the log with its path", () => {
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website"))],
      jobs: [jobFile(jobRecord("job-2", "cell-1"), { logs: { stdout: true, stderr: false } })]
    })
    expect(result.jobs.map((job) => job.id)).toEqual(["job-2"])
    expect(result.report.logs).toBe(1)
    expect(result.report.skipped).toEqual([{
      path: `${SOURCE}/logs/job-2.stderr.log`,
      reason: expect.stringMatching(/^missing/)
    }])
    expect(result.copies.filter((copy) => copy.kind === "log")).toHaveLength(1)
  })

  it("skips what it cannot read, reporting each file, and imports the rest", () => {
    const truncated: ScannedJob = {
      path: "jobs/job-5.json",
      placeId: "job-5",
      record: decodeJobFile("{\"id\": \"job-5\", \"cell"),
      fingerprint: "9:1:1",
      logs: { stdout: true, stderr: true }
    }
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website")), cellFile(cellRecord("cell-7", "other"), "cell-8")],
      jobs: [
        truncated,
        jobFile(jobRecord("job-2", "cell-1")),
        jobFile(jobRecord("job-6", "cell-1"), { placeId: "job-60" })
      ]
    })
    expect(result.jobs.map((job) => job.id)).toEqual(["job-2"])
    expect(result.report.skipped).toEqual([
      {
        path: `${SOURCE}/cells/cell-8/cell.json`,
        reason: expect.stringContaining("it says it is cell-7 but lies in cells/cell-8/")
      },
      { path: `${SOURCE}/jobs/job-5.json`, reason: expect.stringMatching(/^cut short/) },
      { path: `${SOURCE}/jobs/job-60.json`, reason: expect.stringContaining("it says it is job-6") }
    ])
    expect(result.files).toEqual(expect.arrayContaining([
      {
        path: "jobs/job-5.json",
        record_id: null,
        outcome: "skipped",
        reason: expect.stringMatching(/^cut short/),
        fingerprint: "9:1:1"
      },
      { path: "jobs/job-2.json", record_id: "job-2", outcome: "imported", reason: null, fingerprint: null }
    ]))
  })

  it("skips ids that collide with existing rows, never overwriting them; the jobs of a colliding cell stay under it", () => {
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website"))],
      jobs: [jobFile(jobRecord("job-2", "cell-1")), jobFile(jobRecord("job-3", "cell-1"))],
      existing: {
        cells: new Map([["cell-1", `${STATE}/cells/cell-1`]]),
        cellNames: new Set(["website"]),
        jobIds: new Set(["job-2"]),
        targetCellDirs: new Set(["cell-1"]),
        targetLogs: new Set(["job-2.stdout.log"])
      }
    })
    expect(result.cells).toEqual([])
    expect(result.jobs.map((job) => job.id)).toEqual(["job-3"])
    expect(result.jobs[0]!.command.cwd).toBe(`${STATE}/cells/cell-1`)
    expect(result.report.skipped).toEqual([
      {
        path: `${SOURCE}/cells/cell-1/cell.json`,
        reason: "a cell with the id cell-1 already exists in the state dir: it is not overwritten"
      },
      {
        path: `${SOURCE}/jobs/job-2.json`,
        reason: "a job with the id job-2 already exists in the state dir: it is not overwritten"
      }
    ])
    expect(result.copies.map((copy) => copy.from)).toEqual([
      `${SOURCE}/logs/job-3.stdout.log`,
      `${SOURCE}/logs/job-3.stderr.log`
    ])
  })

  it("never copies over a cell dir or log that is in the state dir without a record", () => {
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website"))],
      jobs: [jobFile(jobRecord("job-2", "cell-1"))],
      existing: {
        cells: new Map(),
        cellNames: new Set(),
        jobIds: new Set(),
        targetCellDirs: new Set(["cell-1"]),
        targetLogs: new Set(["job-2.stderr.log"])
      }
    })
    expect(result.cells).toEqual([])
    expect(result.jobs).toEqual([])
    expect(result.copies).toEqual([])
    expect(result.report.skipped.map((entry) => entry.reason)).toEqual([
      `${STATE}/cells/cell-1 already exists and belongs to no cell: move it away and import again`,
      `${STATE}/logs/job-2.stderr.log already exists and belongs to no job: move it away and import again`
    ])
  })

  it("imports the jobs of a missing cell under a placeholder with the cell's id, dated by its first job", () => {
    const result = plan({
      cells: [],
      jobs: [
        jobFile(jobRecord("job-2", "cell-9", { started_at_ms: 300 })),
        jobFile(jobRecord("job-3", "cell-9", { started_at_ms: 100 }))
      ],
      sourceCellDirs: new Set(["cell-9"]),
      existing: {
        cells: new Map(),
        cellNames: new Set(["legacy-9"]),
        jobIds: new Set(),
        targetCellDirs: new Set(),
        targetLogs: new Set()
      }
    })
    expect(result.cells).toEqual([
      expect.objectContaining({
        id: "cell-9",
        name: "legacy-9-2",
        env: {},
        dir: `${STATE}/cells/cell-9`,
        created_at_ms: 100
      })
    ])
    expect(result.jobs.map((job) => job.cell_id)).toEqual(["cell-9", "cell-9"])
    expect(result.report.placeholder_cells).toBe(1)
    expect(result.copies[0]).toEqual({ kind: "cell-dir", from: `${SOURCE}/cells/cell-9`, to: `${STATE}/cells/cell-9` })
    expect(result.report.notes[0]!.note).toContain("placeholder cell named legacy-9-2, with its directory's files")
  })

  it("gives a placeholder without any source dir an empty dir to create", () => {
    const result = plan({ cells: [], jobs: [jobFile(jobRecord("job-2", "cell-9"))], sourceCellDirs: new Set() })
    expect(result.createDirs).toEqual([`${STATE}/cells/cell-9`])
    expect(result.copies.filter((copy) => copy.kind === "cell-dir")).toEqual([])
  })

  it("renames a cell whose name is taken or that Planter refuses, and says so", () => {
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website")), cellFile(cellRecord("cell-2", "my site"))],
      jobs: [],
      existing: {
        cells: new Map(),
        cellNames: new Set(["website"]),
        jobIds: new Set(),
        targetCellDirs: new Set(),
        targetLogs: new Set()
      }
    })
    expect(result.cells.map((cell) => [cell.id, cell.name])).toEqual([["cell-1", "legacy-1"], ["cell-2", "legacy-2"]])
    expect(result.report.notes.map((note) => note.note)).toEqual([
      "cell cell-1 imported as legacy-1: the name website is taken by another cell",
      expect.stringMatching(/^cell cell-2 imported as legacy-2: invalid cell name "my site"/)
    ])
  })

  it("imports a job recorded running as lost, with its note for the journal", () => {
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website"))],
      jobs: [
        jobFile(
          jobRecord("job-2", "cell-1", {
            status: { type: "running" },
            finished_at_ms: null,
            termination_reason: null,
            pid: 777
          })
        )
      ],
      livePids: new Set([777])
    })
    expect(result.jobs[0]).toMatchObject({
      status: "exited",
      termination_reason: "lost",
      exit_code: null,
      pid: 777,
      pid_start_time: null,
      finished_at_ms: NOW
    })
    expect(result.lost).toEqual([{ job: result.jobs[0], note: expect.stringContaining("pid 777 is alive") }])
    expect(result.report.lost_jobs).toBe(1)
  })
})

describe("what earlier imports dealt with", () => {
  const handled = new Map([
    ["jobs/job-1.json", { outcome: "imported" as const, fingerprint: null }],
    ["jobs/job-2.json", { outcome: "skipped" as const, fingerprint: "10:1:1" }]
  ])

  it("leaves an imported file alone, and a skipped one until it changes", () => {
    expect(handledBefore(handled, "jobs/job-1.json", () => "anything")).toBe(true)
    expect(handledBefore(handled, "jobs/job-2.json", () => "10:1:1")).toBe(true)
    expect(handledBefore(handled, "jobs/job-2.json", () => "11:2:2")).toBe(false)
    expect(handledBefore(handled, "jobs/job-3.json", () => "10:1:1")).toBe(false)
  })
})

describe("the report line", () => {
  it("has the counts and names every skipped file with its reason", () => {
    const result = plan({
      cells: [cellFile(cellRecord("cell-1", "website"))],
      jobs: [jobFile(jobRecord("job-2", "cell-1"), { logs: { stdout: false, stderr: false } })]
    })
    const line = summaryLine(result.report)
    expect(line).toMatch(
      /^legacy import from \/backup\/prototype-state: imported 1 cell\(s\), 1 job\(s\), 0 log\(s\); 2 file\(s\) skipped: /
    )
    expect(line).toContain(`${SOURCE}/logs/job-2.stdout.log (missing`)
    expect(line).toContain(`${SOURCE}/logs/job-2.stderr.log (missing`)
    expect(line).not.toContain("\n")
    expect(countsLine({ ...result.report, dry_run: true })).toContain(
      "dry run, nothing changed: would import 1 cell(s)"
    )
  })
})
