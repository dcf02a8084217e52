import { describe, expect, it } from "vitest"
import { ago, shortDuration } from "../../src/cli/HumanTime.js"
import { endNote, jobRows } from "../../src/cli/Output.js"
import type { CellId, JobId } from "../../src/rpc/Ids.js"
import { jobOutcome, statusText } from "../../src/rpc/JobOutcome.js"
import { Job, JobCommand, JobSandbox } from "../../src/rpc/Models.js"
import { fromLauncherStatus } from "../../src/services/ExitStatus.js"

const job = (fields: Partial<ConstructorParameters<typeof Job>[0]> = {}) =>
  new Job({
    id: "job-abc123" as JobId,
    cell_id: "cell-xyz" as CellId,
    command: new JobCommand({ argv: ["sh", "-c", "exit 3"], cwd: "/c", env: {}, limits: null }),
    status: "exited",
    exit_code: 0,
    signal: null,
    termination_reason: "exited",
    pid: 1,
    pid_start_time: "1",
    started_at_ms: 1_000_000,
    finished_at_ms: 1_004_500,
    sandbox: new JobSandbox({ mode: "disabled", backend: "none", network: "allow", fallback_reason: null }),
    owner_uid: 0,
    ...fields
  })

describe("job outcome and status words", () => {
  it("says running, exited N, killed (SIGNAL), timeout, lost", () => {
    expect(statusText(job({ status: "running", exit_code: null, termination_reason: null, finished_at_ms: null })))
      .toBe("running")
    expect(statusText(job())).toBe("exited 0")
    expect(statusText(job({ exit_code: 3 }))).toBe("exited 3")
    const killed = job({ exit_code: null, signal: "SIGTERM", termination_reason: "terminated_by_user" })
    expect(statusText(killed)).toBe("killed (SIGTERM)")
    expect(jobOutcome(killed)).toBe("killed")
    expect(statusText(job({ exit_code: null, signal: "SIGTERM", termination_reason: "timeout" }))).toBe("timeout")
    expect(statusText(job({ exit_code: null, termination_reason: "lost" }))).toBe("lost")
    expect(jobOutcome(job({ exit_code: null, signal: "SIGSEGV", termination_reason: "exited" }))).toBe("killed")
  })

  it("run --wait's and logs -f's end note says why a job did not end on its own, each word once", () => {
    expect(endNote(job())).toBeUndefined()
    expect(endNote(job({ exit_code: null, signal: "SIGTERM", termination_reason: "terminated_by_user" })))
      .toBe("job-abc123 killed (SIGTERM): terminated_by_user")
    expect(endNote(job({ exit_code: null, termination_reason: "lost" }))).toBe("job-abc123 lost")
    expect(endNote(job({ exit_code: null, signal: "SIGTERM", termination_reason: "timeout" }))).toBe(
      "job-abc123 timeout"
    )
  })

  it("reads bubblewrap's 128+N as signal N, and leaves other codes alone", () => {
    expect(fromLauncherStatus({ code: 137, signal: null })).toEqual({ code: null, signal: "SIGKILL" })
    expect(fromLauncherStatus({ code: 143, signal: null })).toEqual({ code: null, signal: "SIGTERM" })
    expect(fromLauncherStatus({ code: 3, signal: null })).toEqual({ code: 3, signal: null })
    expect(fromLauncherStatus({ code: 128, signal: null })).toEqual({ code: 128, signal: null })
    expect(fromLauncherStatus({ code: 255, signal: null })).toEqual({ code: 255, signal: null })
  })

  it("lays out job ls like docker ps, coloured only when asked", () => {
    const now = 1_000_000 + 3 * 60_000
    const rows = [job({ name: "build" }), job({ exit_code: 3 })]
    const plain = jobRows(rows, new Map([["cell-xyz", "demo"]]), now, false)
    const lines = plain.split("\n")
    expect(lines[0]).toMatch(/^ID\s+NAME\s+CELL\s+STATUS\s+STARTED\s+DURATION\s+COMMAND$/)
    expect(lines[1]).toMatch(/^job-abc123\s+build\s+demo\s+exited 0\s+3 minutes ago\s+4s\s+sh -c 'exit 3'$/)
    expect(lines[2]).toMatch(/\s-\s+demo\s+exited 3 /)
    expect(plain).not.toMatch(/\x1b\[/)
    // Columns line up: STATUS starts at the same place in every line.
    expect(new Set(lines.map((line) => line.indexOf(line.includes("STATUS") ? "STATUS" : "exited"))).size).toBe(1)
    const coloured = jobRows(rows, new Map(), now, true)
    expect(coloured).toContain("\x1b[31mexited 3")
  })

  it("says durations and ages shortly", () => {
    expect(shortDuration(850)).toBe("850ms")
    expect(shortDuration(184_000)).toBe("3m04s")
    expect(shortDuration(2 * 3_600_000 + 5 * 60_000)).toBe("2h05m")
    expect(ago(0, 1500)).toBe("1 second ago")
    expect(ago(0, 2 * 86_400_000)).toBe("2 days ago")
  })
})
