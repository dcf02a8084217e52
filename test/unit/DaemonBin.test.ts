import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { planterdNodeFlags, repoRoot } from "../support/daemon.js"

const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), "utf8")

describe("the planterd bin's node flags", () => {
  // Tests and the bench start `node <flags> dist/planterd.mjs` themselves: they must run the daemon as the bin does.
  it("are the same on the bin's #! line, in `npm start`, in the tests and in the bench", () => {
    const hashBang = read("src/cli/planterdLauncher.ts").split("\n")[0]!
    expect(hashBang).toBe(`#!/usr/bin/env -S node ${planterdNodeFlags.join(" ")}`)
    const start = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts.start
    expect(start).toBe(`exec node ${planterdNodeFlags.join(" ")} dist/planterd.mjs`)
    const bench = /export const planterdNodeFlags = (\[.*\]) as const/.exec(read("bench/daemon.ts"))?.[1]
    expect(bench === undefined ? undefined : JSON.parse(bench)).toEqual([...planterdNodeFlags])
  })
})

describe("the daemon bundle", () => {
  // Each costs the idle daemon RSS for nothing it uses at start (scripts/bundle-daemon.mjs, docs/benchmarks.md).
  it("imports neither node:crypto nor node:readline", () => {
    const bundle = read("dist/planterd-daemon.mjs")
    expect(bundle).toContain("/dev/urandom")
    expect(bundle.match(/from\s*["']node:(crypto|readline)["']|require\(["'](node:)?(crypto|readline)["']\)/g))
      .toBeNull()
  })
})
