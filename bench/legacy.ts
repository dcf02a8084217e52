/**
 * A prototype state dir for the legacy import figure: the earlier Rust
 * prototype's JSON layout (see test/fixtures/legacy-state-sample), with one
 * cell and `jobs` job records, each with a stdout and an (empty) stderr log.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const OLD_ROOT = "/Users/alice/.planter/state"
const CELL = "cell-1760000000001"

export const writePrototypeState = (dir: string, jobs: number) => {
  for (const sub of [path.join("cells", CELL), "jobs", "logs"]) fs.mkdirSync(path.join(dir, sub), { recursive: true })
  fs.writeFileSync(
    path.join(dir, "cells", CELL, "cell.json"),
    JSON.stringify(
      {
        id: CELL,
        spec: { name: "bench", env: { NODE_ENV: "production" } },
        created_at_ms: 1760000000001,
        dir: `${OLD_ROOT}/cells/${CELL}`
      },
      null,
      2
    )
  )
  fs.writeFileSync(path.join(dir, "cells", CELL, "index.html"), "<h1>hello</h1>\n")
  for (let i = 0; i < jobs; i++) {
    const id = `job-${1770000000000 + i}`
    const job = {
      id,
      cell_id: CELL,
      command: {
        argv: ["/bin/sh", "-c", `echo step ${i}`],
        cwd: null,
        env: { STEP: String(i) },
        limits: { timeout_ms: 60000, max_rss_bytes: null, max_log_bytes: null }
      },
      stdout_path: `${OLD_ROOT}/logs/${id}.stdout.log`,
      stderr_path: `${OLD_ROOT}/logs/${id}.stderr.log`,
      started_at_ms: 1770000000000 + i * 1000,
      finished_at_ms: 1770000000000 + i * 1000 + 120,
      pid: 1000 + (i % 90000),
      status: { type: "exited", code: i % 7 === 0 ? 1 : 0 },
      termination_reason: "exited"
    }
    fs.writeFileSync(path.join(dir, "jobs", `${id}.json`), JSON.stringify(job, null, 2))
    fs.writeFileSync(path.join(dir, "logs", `${id}.stdout.log`), `step ${i}\n`)
    fs.writeFileSync(path.join(dir, "logs", `${id}.stderr.log`), "")
  }
}

/** Runs `node script args` to its end: milliseconds from spawn to exit, and its stdout. */
export const timeNode = (
  script: string,
  args: ReadonlyArray<string>
): Promise<{ readonly ms: number; readonly stdout: string }> =>
  new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (data) => (stdout += data))
    child.stderr.on("data", (data) => (stderr += data))
    child.once("error", reject)
    child.once("close", (code) => {
      const ms = performance.now() - start
      if (code !== 0) reject(new Error(`${path.basename(script)} ${args.join(" ")} exited with ${code}: ${stderr}`))
      else resolve({ ms, stdout })
    })
  })
