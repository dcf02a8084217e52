/**
 * The CLI's snapshot build runs src/cli/WarmUp.ts: command lines through
 * @effect/cli, and the typed client against a stand-in daemon answering
 * with sample records. The samples must stay what the daemon sends (else the
 * warm-up compiles a failure path instead of the answers'), and the warm-up
 * must finish (else the build has no snapshot), leaving nothing behind.
 */
import { Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import { describe, expect, it } from "vitest"
import { sampleAnswers, warmUp } from "../../src/cli/WarmUp.js"
import { CellPage, JobPage, VersionInfo } from "../../src/rpc/Models.js"

describe("the snapshot's warm-up", () => {
  it("answers with records that decode as the daemon's answers do", () => {
    expect(Schema.decodeUnknownSync(VersionInfo)(sampleAnswers.Version)).toBeInstanceOf(VersionInfo)
    const jobs = Schema.decodeUnknownSync(JobPage)(sampleAnswers.JobList, { onExcessProperty: "error" })
    expect(jobs.jobs).toHaveLength(1)
    const cells = Schema.decodeUnknownSync(CellPage)(sampleAnswers.CellList, { onExcessProperty: "error" })
    expect(cells.cells[0]!.id).toBe(jobs.jobs[0]!.cell_id)
  })

  it("runs to the end through the real client, and removes its temporary socket dir", async () => {
    const leftovers = () => fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("planter-warm-up-"))
    const before = leftovers()
    await expect(warmUp()).resolves.toBeUndefined()
    expect(leftovers()).toEqual(before)
  })
})
