import { describe, expect, it } from "@effect/vitest"
import { hoistGlobalOptions } from "../../src/cli/Argv.js"
import { cellNameProblem } from "../../src/services/Cells.js"

describe("hoistGlobalOptions", () => {
  it("moves --json and --socket in front of the subcommand", () => {
    expect(hoistGlobalOptions(["job", "ls", "--json", "--socket", "/s"])).toEqual([
      "--json",
      "--socket",
      "/s",
      "job",
      "ls"
    ])
    expect(hoistGlobalOptions(["health", "--socket=/s"])).toEqual(["--socket", "/s", "health"])
  })

  it("never touches the job's own argv after --", () => {
    expect(hoistGlobalOptions(["run", "demo", "--", "tool", "--json", "--socket", "x"])).toEqual([
      "run",
      "demo",
      "--",
      "tool",
      "--json",
      "--socket",
      "x"
    ])
  })
})

describe("cellNameProblem", () => {
  it("accepts plain names and explains what is wrong with others", () => {
    expect(cellNameProblem("demo-1.x_y")).toBeUndefined()
    expect(cellNameProblem("../x")).toMatch(/letters, digits/)
    expect(cellNameProblem("")).toMatch(/invalid cell name/)
    expect(cellNameProblem("a".repeat(65))).toMatch(/1 to 64/)
    expect(cellNameProblem("cell-abc")).toMatch(/reserved/)
  })
})
