/**
 * Paged lists through the daemon and the CLI: `job ls` shows the newest
 * page, `--limit N` the newest N (over several pages when N > 1000),
 * `--all` every job a page at a time, `--json` one document; filters and
 * cursors are checked by the daemon.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { make } from "../../src/rpc/client.js"
import type { Job } from "../../src/rpc/Models.js"
import type { TestDaemon } from "../support/daemon.js"
import { startDaemon, stopAllDaemons } from "../support/daemon.js"
import { finishedJob, seededStateDir } from "../support/seed.js"

const TIMEOUT = 120_000
const SEEDED = 2100

let daemon: TestDaemon

const seededId = (n: number) => `job-s${String(n).padStart(4, "0")}`
const newest = (count: number, from = SEEDED - 1, step = 1) =>
  Array.from({ length: count }, (_, i) => seededId(from - i * step))

/** SEEDED finished jobs (ids job-s0000…, one ms apart; odd ones in cell `odd`), written through the repository. */
beforeAll(async () => {
  const jobs = Array.from(
    { length: SEEDED },
    (_, n) => finishedJob(seededId(n), n % 2 === 0 ? "cell-even" : "cell-odd", ["true"], 1_700_000_000_000 + n)
  )
  daemon = await startDaemon({ stateDir: await seededStateDir({ "cell-even": "even", "cell-odd": "odd" }, jobs) })
}, TIMEOUT)

afterAll(stopAllDaemons)

describe("paged lists", () => {
  it("job ls shows the newest 50, says more exist, and --limit N shows the newest N", async () => {
    const table = await daemon.cli(["job", "ls"])
    expect(table.code, table.stderr).toBe(0)
    const ids = table.stdout.split("\n").filter((line) => line.startsWith("job-")).map((line) => line.split(/\s+/)[0])
    expect(ids).toEqual(newest(50))
    expect(table.stderr).toContain("--all")

    expect((await daemon.json<Array<Job>>(["job", "ls", "--limit", "7"])).map((job) => job.id)).toEqual(newest(7))
    // More than one page (the daemon answers at most 1000 a request).
    expect((await daemon.json<Array<Job>>(["job", "ls", "--limit", "1500"])).map((job) => job.id)).toEqual(newest(1500))
  }, TIMEOUT)

  it("--all streams every job, newest first, as one JSON document", async () => {
    const all = await daemon.cli(["--json", "job", "ls", "--all"])
    expect(all.code, all.stderr).toBe(0)
    const jobs = JSON.parse(all.stdout) as Array<Job>
    expect(jobs.map((job) => job.id)).toEqual(newest(SEEDED))
    // Formatted as any other --json document.
    expect(all.stdout).toBe(JSON.stringify(jobs, null, 2) + "\n")

    const table = await daemon.cli(["job", "ls", "--all"])
    const rows = table.stdout.split("\n").filter((line) => line.startsWith("job-"))
    expect(rows).toHaveLength(SEEDED)
    expect(table.stdout.match(/^ID\s/gm)).toHaveLength(1)
  }, TIMEOUT)

  it("filters by cell and status, and pages a filtered list", async () => {
    const odd = await daemon.json<Array<Job>>(["job", "ls", "--cell", "odd", "--limit", "1200"])
    expect(odd.map((job) => job.id)).toEqual(newest(1050, SEEDED - 1, 2))
    expect(await daemon.json(["job", "ls", "--status", "running"])).toEqual([])
    expect(
      (await daemon.json<Array<Job>>(["job", "ls", "--status", "exited", "--cell", "even", "--limit", "3"])).map((
        job
      ) => job.id)
    )
      .toEqual(newest(3, SEEDED - 2, 2))
  }, TIMEOUT)

  it("pages through the typed client with cursors and time filters", async () => {
    const pages = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const client = yield* make({ socketPath: daemon.socketPath })
      const first = yield* client.JobList({ limit: 2, since_ms: 1_700_000_000_010, until_ms: 1_700_000_000_015 })
      const second = yield* client.JobList({
        limit: 2,
        since_ms: 1_700_000_000_010,
        until_ms: 1_700_000_000_015,
        after: first.next
      })
      const third = yield* client.JobList({
        limit: 2,
        since_ms: 1_700_000_000_010,
        until_ms: 1_700_000_000_015,
        after: second.next
      })
      const cells = yield* client.CellList({ limit: 1 })
      const moreCells = yield* client.CellList({ limit: 1, after: cells.next })
      const badCursor = yield* Effect.flip(client.JobList({ after: "12.cell-even" }))
      const badLimit = yield* Effect.flip(client.JobList({ limit: 1001 }))
      return { first, second, third, cells, moreCells, badCursor, badLimit }
    })))
    expect(pages.first.jobs.map((job) => job.id)).toEqual(["job-s0014", "job-s0013"])
    expect(pages.second.jobs.map((job) => job.id)).toEqual(["job-s0012", "job-s0011"])
    expect(pages.third.jobs.map((job) => job.id)).toEqual(["job-s0010"])
    expect(pages.third.next).toBeNull()
    expect(pages.cells.cells.map((cell) => cell.name)).toEqual(["even"])
    expect(pages.moreCells.cells.map((cell) => cell.name)).toEqual(["odd"])
    expect(pages.moreCells.next).toBeNull()
    expect(pages.badCursor).toMatchObject({
      code: "invalid_request",
      message: expect.stringContaining("invalid cursor")
    })
    expect(pages.badLimit).toMatchObject({ code: "invalid_request", message: expect.stringContaining("limit") })
  }, TIMEOUT)

  it("refuses --limit 0 and --limit with --all as usage errors", async () => {
    expect((await daemon.cli(["job", "ls", "--limit", "0"])).code).toBe(2)
    const both = await daemon.cli(["job", "ls", "--limit", "3", "--all"])
    expect(both.code).toBe(2)
    expect(both.stderr).toContain("--limit and --all")
  }, TIMEOUT)
})
