import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import { describe, expect, it } from "vitest"
import { command } from "../../src/cli/Commands.js"
import { closest, commands, interpret, optionNames } from "../../src/cli/Help.js"
import { stripAnsi } from "../../src/cli/Style.js"

/** Each command path @effect/cli parses, with the options it accepts, read from its own usage summary. */
const parsedCommands = () => {
  const text = stripAnsi(HelpDoc.toAnsiText(Command.getHelp(command, CliConfig.defaultConfig)))
  const summary = text.slice(text.indexOf("COMMANDS"))
  const found = new Map<string, Array<string>>()
  for (const line of summary.split("\n")) {
    const match = /^\s+- (.*)$/.exec(line)
    if (!match) continue
    const tokens = match[1]!.split(/\s{2,}/)[0]!.split(" ")
    const path: Array<string> = []
    for (const token of tokens) {
      if (/^[a-z]+$/.test(token)) path.push(token)
      else break
    }
    const flags = [...match[1]!.split(/\s{2,}/)[0]!.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)].map((m) => m[1]!)
    found.set(path.join(" "), flags)
  }
  return found
}

describe("help", () => {
  it("describes every command @effect/cli parses, and every option it accepts", () => {
    const parsed = parsedCommands()
    expect(parsed.size).toBeGreaterThan(15)
    for (const [path, flags] of parsed) {
      const help = commands.find((entry) => entry.path === path)
      expect(help, `help for \`planter ${path}\``).toBeDefined()
      for (const flag of flags) expect(optionNames(help!), `\`planter ${path}\` documents ${flag}`).toContain(flag)
    }
  })

  it("gives every command a one-line description, a usage with its full path, and an example; every option one line with an example", () => {
    for (const help of commands) {
      expect(help.description, help.path).not.toContain("\n")
      expect(help.usage.startsWith(`planter ${help.path}`.trimEnd()), help.usage).toBe(true)
      expect(help.examples.length, `examples of ${help.path}`).toBeGreaterThan(0)
      for (const example of help.examples) expect(example).toMatch(/planter /)
      for (const option of help.options) {
        expect(option.text, option.flag).not.toContain("\n")
        expect(option.text, `${help.path} ${option.flag}`).toMatch(/e\.g\./)
      }
    }
  })

  it("answers help for the deepest command named, plain text with the full usage line", () => {
    const asked = interpret(["job", "ls", "--help"])
    expect(asked._tag).toBe("Help")
    const text = (asked as { text: string }).text
    expect(text).toContain("Usage: planter job ls")
    expect(text).not.toMatch(/\x1b\[/)
    expect(text).not.toMatch(/completions|wizard|log-level/)
    expect(interpret(["--json", "--socket", "/x", "run", "-h"])).toMatchObject({ _tag: "Help" })
    expect((interpret([]) as { text: string }).text).toContain("Commands:")
    expect((interpret(["help", "logs"]) as { text: string }).text).toContain("Usage: planter logs JOB")
  })

  it("suggests the closest command or option for a typo, and leaves the job's argv alone", () => {
    expect(interpret(["job", "lst"])).toMatchObject({
      _tag: "Unknown",
      message: expect.stringContaining("did you mean `job ls`?")
    })
    expect(interpret(["job", "stauts", "x"])).toMatchObject({
      message: expect.stringContaining("did you mean `job status`?")
    })
    expect(interpret(["jbo", "ls"])).toMatchObject({
      _tag: "Unknown",
      message: expect.stringContaining("did you mean `job`?")
    })
    expect(interpret(["job", "ls", "--nmae", "x"])).toMatchObject({
      _tag: "Unknown",
      message: expect.stringContaining("did you mean --name?")
    })
    expect(interpret(["run", "demo", "--", "ls", "--bogus"])).toEqual({ _tag: "Run" })
    expect(interpret(["logs", "build", "--offset", "-1"])).toEqual({ _tag: "Run" })
    expect(interpret(["--completions", "bash"])).toEqual({ _tag: "Run" })
    expect(closest("zzzz", ["ls", "rm"])).toBeUndefined()
  })
})
