/**
 * Pages the client can take: a client refuses an answer larger than MAX_RESPONSE_FRAME_BYTES (and the
 * connection is lost), so the daemon cuts a page of large rows short by size, with the cursor of the next.
 * 1200 jobs of a 6 KB `sh -c` script each (and their events, which hold the argv) are over 7 MB: `job ls --all` and `events`
 * used to fail as if the daemon had crashed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import { startCli, startDaemon, stopAllDaemons, waitFor } from "../support/daemon.js"
import { finishedJob, seededStateDir } from "../support/seed.js"

const TIMEOUT = 120_000
const SEEDED = 1200
const SCRIPT = `echo ${"x".repeat(6000)}`

let daemon: TestDaemon

beforeAll(async () => {
  const jobs = Array.from(
    { length: SEEDED },
    (_, n) => finishedJob(`job-b${String(n).padStart(4, "0")}`, "cell-big", ["sh", "-c", SCRIPT], 1_700_000_000_000 + n)
  )
  daemon = await startDaemon({ stateDir: await seededStateDir({ "cell-big": "big" }, jobs) })
}, TIMEOUT)

afterAll(stopAllDaemons)

describe("pages of large rows", () => {
  it("job ls --all and --limit list every job, however large their commands", async () => {
    const all = await daemon.cli(["--json", "job", "ls", "--all"])
    expect(all.code, all.stdout.slice(0, 500) + all.stderr).toBe(0)
    const jobs = JSON.parse(all.stdout) as Array<{ id: string; command: { argv: Array<string> } }>
    expect(jobs).toHaveLength(SEEDED)
    expect(jobs[0]!.id).toBe(`job-b${SEEDED - 1}`)
    expect(jobs.every((job) => job.command.argv[2] === SCRIPT)).toBe(true)
    const limited = await daemon.json<Array<{ id: string }>>(["job", "ls", "--limit", "1000"])
    expect(limited.map((job) => job.id)).toEqual(jobs.slice(0, 1000).map((job) => job.id))
  }, TIMEOUT)

  it("events lists every event, however large their details", async () => {
    const events = await daemon.cli(["--json", "events", "--job", `job-b${SEEDED - 1}`, "--limit", "5"])
    expect(events.code, events.stderr).toBe(0)
    const listed = await daemon.cli(["--json", "events", "--cell", "big", "--limit", "5000"])
    expect(listed.code, listed.stdout.slice(0, 500) + listed.stderr).toBe(0)
    const rows = JSON.parse(listed.stdout) as Array<{ job_id: string; detail: { argv?: Array<string> } }>
    expect(rows.filter((row) => row.detail.argv?.[2] === SCRIPT)).toHaveLength(SEEDED)
  }, TIMEOUT)

  it("events -f streams the history in chunks the client can take, then follows", async () => {
    const following = startCli(daemon.socketPath, ["events", "-f", "--since", "1h", "--cell", "big"])
    let code: number | null | undefined
    void following.exited.then((c) => (code = c))
    try {
      await waitFor(
        "the newest job's event",
        () => following.stdout().includes(`job-b${SEEDED - 1}`) || code !== undefined,
        60_000
      )
      expect(code, following.stderr()).toBeUndefined()
    } finally {
      following.child.kill("SIGINT")
      await following.exited
    }
  }, TIMEOUT)
})
