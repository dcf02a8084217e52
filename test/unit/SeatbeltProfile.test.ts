import { FileSystem } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import {
  canonicalizeSeatbeltPolicy,
  escapeSbplString,
  loadSeatbeltFragments,
  renderSeatbeltProfile,
  type SeatbeltFragments,
  type SeatbeltPolicy,
  SeatbeltProfileError,
  writeSeatbeltProfile
} from "../../src/services/SeatbeltProfile.js"

const profilesDir = fileURLToPath(new URL("../../profiles/", import.meta.url))
const goldenDir = fileURLToPath(new URL("../golden/seatbelt/", import.meta.url))

// `UPDATE_GOLDEN=1 npx vitest run test/unit/SeatbeltProfile.test.ts` rewrites
// the golden files; review the diff before committing it, because it is the
// sandbox every macOS job runs under.
const updateGolden = process.env["UPDATE_GOLDEN"] === "1"

const expectGolden = (name: string, actual: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const file = join(goldenDir, name)
    if (updateGolden) {
      yield* fs.makeDirectory(goldenDir, { recursive: true })
      yield* fs.writeFileString(file, actual)
      return
    }
    expect(actual).toBe(yield* fs.readFileString(file))
  })

const fragments = loadSeatbeltFragments(profilesDir)

const render = (f: SeatbeltFragments, policy: SeatbeltPolicy): string =>
  Either.getOrThrowWith(renderSeatbeltProfile(f, policy), (e) => new Error(e.message))

const renderError = (f: SeatbeltFragments, policy: SeatbeltPolicy): SeatbeltProfileError => {
  const result = renderSeatbeltProfile(f, policy)
  if (Either.isRight(result)) throw new Error(`expected an error, rendered:\n${result.right}`)
  return result.left
}

const typicalPolicy = (network: SeatbeltPolicy["network"]): SeatbeltPolicy => ({
  readOnlyPaths: [
    "/Users/alice/.planter/toolchains/node-20.19.0",
    "/opt/homebrew/Cellar/python@3.12",
    "/Users/alice/src/shared-fixtures"
  ],
  writablePaths: [
    "/Users/alice/.planter/cells/c-01HZX4",
    "/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/planter-job-01HZX4"
  ],
  network
})

/**
 * A small SBPL reader, as far as the tests need one: enough to tell where
 * strings, comments and top-level forms begin and end, the way the real
 * reader does. It returns the top-level forms as their source text.
 */
const topLevelForms = (profile: string): ReadonlyArray<string> => {
  const forms: Array<string> = []
  let depth = 0
  let start = 0
  let i = 0
  while (i < profile.length) {
    const c = profile[i]
    if (c === ";") {
      while (i < profile.length && profile[i] !== "\n") i++
      continue
    }
    if (c === "\"" || (c === "#" && profile[i + 1] === "\"")) {
      i += c === "#" ? 2 : 1
      while (profile[i] !== "\"") {
        if (i >= profile.length) throw new Error("unterminated string literal")
        i += profile[i] === "\\" ? 2 : 1
      }
      i++
      continue
    }
    if (c === "(") {
      if (depth === 0) start = i
      depth++
    } else if (c === ")") {
      depth--
      if (depth < 0) throw new Error(`unbalanced ) at offset ${i}`)
      if (depth === 0) forms.push(profile.slice(start, i + 1))
    }
    i++
  }
  if (depth !== 0) throw new Error("unbalanced (")
  return forms
}

/** Every plain string literal in the profile, unescaped as the reader would. */
const stringLiterals = (profile: string): ReadonlyArray<string> => {
  const literals: Array<string> = []
  const pattern = /(#?)"((?:[^"\\]|\\.)*)"|;[^\n]*/gs
  for (const match of profile.matchAll(pattern)) {
    if (match[0].startsWith(";") || match[1] === "#") continue
    literals.push((match[2] ?? "").replace(/\\(.)/gs, "$1"))
  }
  return literals
}

const normalize = (form: string) => form.replace(/\s+/g, " ")

describe("escapeSbplString", () => {
  it("quotes and escapes backslash and double quote", () => {
    expect(escapeSbplString("/plain/path")).toStrictEqual(Either.right("\"/plain/path\""))
    expect(escapeSbplString("a\"b\\c")).toStrictEqual(Either.right("\"a\\\"b\\\\c\""))
    expect(escapeSbplString("\\\"")).toStrictEqual(Either.right("\"\\\\\\\"\""))
  })

  it("leaves parentheses, semicolons and non-ASCII text alone", () => {
    expect(escapeSbplString("/tmp/(x); y/café ☕")).toStrictEqual(Either.right("\"/tmp/(x); y/café ☕\""))
  })

  it("refuses control characters and unpaired surrogates", () => {
    for (
      const bad of ["/tmp/a\nb", "/tmp/a\u0000b", "/tmp/a\rb", "/tmp/a\tb", "/tmp/\u007f", "/tmp/\u0085", "/tmp/\uD800"]
    ) {
      const result = escapeSbplString(bad)
      expect(Either.isLeft(result), JSON.stringify(bad)).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left).toBeInstanceOf(SeatbeltProfileError)
        expect(result.left.message).toContain(JSON.stringify(bad))
      }
    }
  })
})

describe("renderSeatbeltProfile", () => {
  it.effect("renders a typical policy with network exactly as the golden file", () =>
    Effect.gen(function*() {
      const profile = render(yield* fragments, typicalPolicy("allow"))
      expect(profile).toContain("(allow network*)")
      expect(profile).not.toContain("(deny network*)")
      yield* expectGolden("typical-network-allow.sb", profile)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("renders a typical policy without network exactly as the golden file", () =>
    Effect.gen(function*() {
      const profile = render(yield* fragments, typicalPolicy("deny"))
      expect(profile).toContain("(deny network*)")
      expect(profile).not.toContain("(allow network*)")
      yield* expectGolden("typical-network-deny.sb", profile)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("produces a profile the SBPL reader sees as well-formed top-level rules", () =>
    Effect.gen(function*() {
      const forms = topLevelForms(render(yield* fragments, typicalPolicy("deny"))).map(normalize)
      expect(forms.slice(0, 2)).toStrictEqual(["(version 1)", "(deny default)"])
      expect(forms).toContain(
        "(allow file-read* (subpath \"/Users/alice/.planter/toolchains/node-20.19.0\") (subpath \"/opt/homebrew/Cellar/python@3.12\") (subpath \"/Users/alice/src/shared-fixtures\"))"
      )
      expect(forms).toContain(
        "(allow file-read* file-write* (subpath \"/Users/alice/.planter/cells/c-01HZX4\") (subpath \"/private/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/planter-job-01HZX4\"))"
      )
      expect(forms).not.toContain("(import \"system.sb\")")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("keeps input order and renders a repeated path once", () =>
    Effect.gen(function*() {
      const f = yield* fragments
      const profile = render(f, {
        readOnlyPaths: ["/b", "/a", "/b", "/c", "/a"],
        writablePaths: ["/w2", "/w1", "/w2"],
        network: "deny"
      })
      const forms = topLevelForms(profile).map(normalize)
      expect(forms).toContain("(allow file-read* (subpath \"/b\") (subpath \"/a\") (subpath \"/c\"))")
      expect(forms).toContain("(allow file-read* file-write* (subpath \"/w2\") (subpath \"/w1\"))")
      expect(render(f, { readOnlyPaths: ["/b", "/a", "/c"], writablePaths: ["/w2", "/w1"], network: "deny" }))
        .toBe(profile)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("renders no filterless allow rule when a path list is empty", () =>
    Effect.gen(function*() {
      const f = yield* fragments
      const empty = topLevelForms(render(f, { readOnlyPaths: [], writablePaths: [], network: "deny" }))
        .map(normalize)
      const full = topLevelForms(render(f, typicalPolicy("deny")))
      // An allow without filters would apply to every path on the disk.
      expect(empty).not.toContain("(allow file-read*)")
      expect(empty).not.toContain("(allow file-read* file-write*)")
      expect(empty.filter((form) => form.includes("file-write*"))).toStrictEqual([])
      expect(empty.length).toBe(full.length - 2)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("keeps a path that tries to close its literal inside the literal", () =>
    Effect.gen(function*() {
      const f = yield* fragments
      const hostile = "/tmp/x\") (allow file-write* (subpath \"/\")"
      const backslashed = "/tmp/a\\\") (allow network*) ; (\\"
      const benign = render(f, { readOnlyPaths: ["/r"], writablePaths: ["/w", "/w2"], network: "deny" })
      const profile = render(f, { readOnlyPaths: [backslashed], writablePaths: ["/w", hostile], network: "deny" })

      expect(profile).toContain("(subpath \"/tmp/x\\\") (allow file-write* (subpath \\\"/\\\")\")")
      expect(profile).toContain("(subpath \"/tmp/a\\\\\\\") (allow network*) ; (\\\\\")")

      const forms = topLevelForms(profile).map(normalize)
      expect(forms.length).toBe(topLevelForms(benign).length)
      expect(forms).not.toContain("(allow file-write* (subpath \"/\"))")
      expect(forms).not.toContain("(allow network*)")
      expect(forms.filter((form) => form.startsWith("(allow file-read* file-write*"))).toHaveLength(1)

      // Read back, the literals are exactly the paths that went in.
      const literals = stringLiterals(profile)
      expect(literals).toContain(hostile)
      expect(literals).toContain(backslashed)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("does not expand placeholders or replacement patterns found in paths", () =>
    Effect.gen(function*() {
      const f = yield* fragments
      const sneaky = ["/tmp/{{WRITABLE_PATHS}}", "/tmp/{{NETWORK_RULE}}", "/tmp/$&$'$`$1"]
      const profile = render(f, { readOnlyPaths: sneaky, writablePaths: ["/w"], network: "deny" })
      const literals = stringLiterals(profile)
      for (const path of sneaky) expect(literals).toContain(path)
      expect(profile.match(/\(allow file-read\* file-write\*/g)).toHaveLength(1)
      expect(profile.match(/\(deny network\*\)/g)).toHaveLength(1)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("refuses a newline or NUL in a path", () =>
    Effect.gen(function*() {
      const f = yield* fragments
      const newline = renderError(f, {
        readOnlyPaths: [],
        writablePaths: ["/tmp/x\n(allow file-write* (subpath \"/\"))"],
        network: "deny"
      })
      expect(newline).toBeInstanceOf(SeatbeltProfileError)
      expect(newline._tag).toBe("SeatbeltProfileError")
      const nul = renderError(f, { readOnlyPaths: ["/tmp/x\u0000/etc"], writablePaths: [], network: "allow" })
      expect(nul).toBeInstanceOf(SeatbeltProfileError)
      expect(nul.message).toContain("\\u0000")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("refuses relative paths", () =>
    Effect.gen(function*() {
      const error = renderError(yield* fragments, { readOnlyPaths: ["cells/x"], writablePaths: [], network: "deny" })
      expect(error.message).toContain("\"cells/x\"")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.effect("refuses fragments whose placeholders are missing, repeated, unknown or not alone on a line", () =>
    Effect.gen(function*() {
      const f = yield* fragments
      const policy = typicalPolicy("deny")
      expect(renderError({ ...f, network: "(deny network*)\n" }, policy).message).toContain("{{NETWORK_RULE}}")
      expect(renderError({ ...f, network: `${f.network}\n{{NETWORK_RULE}}\n` }, policy).message)
        .toContain("found it 2 times")
      expect(renderError({ ...f, header: `${f.header}\n{{HOME}}\n` }, policy).message).toContain("{{HOME}}")
      expect(
        renderError(
          { ...f, filesystem: f.filesystem.replace("{{READ_ONLY_PATHS}}", "(x {{READ_ONLY_PATHS}})") },
          policy
        )
          .message
      ).toContain("alone on its line")
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})

describe("loadSeatbeltFragments", () => {
  it.effect("reads the shipped fragments", () =>
    Effect.gen(function*() {
      const f = yield* fragments
      expect(f.header).toContain("(version 1)")
      expect(f.header).toContain("(deny default)")
      expect(f.network).toContain("{{NETWORK_RULE}}")
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("names the fragment it could not read", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "planter-seatbelt-" })
      const error = yield* Effect.flip(loadSeatbeltFragments(dir))
      expect(error).toBeInstanceOf(SeatbeltProfileError)
      expect(error.message).toContain(join(dir, "header.sb"))
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("refuses fragments with a broken placeholder when loading", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "planter-seatbelt-" })
      for (const name of ["header.sb", "process.sb", "filesystem.sb"]) {
        yield* fs.copyFile(join(profilesDir, name), join(dir, name))
      }
      yield* fs.writeFileString(join(dir, "network.sb"), "{{NETWORK_RULES}}\n")
      const error = yield* Effect.flip(loadSeatbeltFragments(dir))
      expect(error.message).toContain("{{NETWORK_RULES}}")
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})

describe("canonicalizeSeatbeltPolicy", () => {
  it.scoped("resolves symlinks to the real path and keeps the order", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      // The temp dir itself may sit behind a symlink (/var on macOS), so
      // the expectation is computed from its real path too.
      const tmp = yield* fs.realPath(yield* fs.makeTempDirectoryScoped({ prefix: "planter-seatbelt-" }))
      const real = join(tmp, "real-cell")
      const link = join(tmp, "cell-link")
      const tools = join(tmp, "tools")
      yield* fs.makeDirectory(real)
      yield* fs.makeDirectory(tools)
      yield* fs.symlink(real, link)

      const canonical = yield* canonicalizeSeatbeltPolicy({
        readOnlyPaths: [join(tmp, "tools", "..", "tools")],
        writablePaths: [link, join(tmp, ".", "real-cell")],
        network: "allow"
      })
      expect(canonical).toStrictEqual({ readOnlyPaths: [tools], writablePaths: [real, real], network: "allow" })
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("fails naming a path that does not exist", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const tmp = yield* fs.makeTempDirectoryScoped({ prefix: "planter-seatbelt-" })
      const missing = join(tmp, "no-such-cell")
      const error = yield* Effect.flip(
        canonicalizeSeatbeltPolicy({ readOnlyPaths: [tmp], writablePaths: [missing], network: "deny" })
      )
      expect(error).toBeInstanceOf(SeatbeltProfileError)
      expect(error.message).toBe(`Seatbelt policy path does not exist: ${missing}`)
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})

describe("writeSeatbeltProfile", () => {
  it.scoped("writes the profile of the canonical policy", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const f = yield* fragments
      const tmp = yield* fs.realPath(yield* fs.makeTempDirectoryScoped({ prefix: "planter-seatbelt-" }))
      const cell = join(tmp, "cell")
      yield* fs.makeDirectory(cell)
      yield* fs.symlink(cell, join(tmp, "cell-link"))
      const file = join(tmp, "job.sb")

      const written = yield* writeSeatbeltProfile(
        f,
        { readOnlyPaths: [], writablePaths: [join(tmp, "cell-link"), cell], network: "deny" },
        file
      )
      expect(yield* fs.readFileString(file)).toBe(written)
      expect(written).toBe(render(f, { readOnlyPaths: [], writablePaths: [cell], network: "deny" }))
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("writes nothing when a path is missing", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const tmp = yield* fs.makeTempDirectoryScoped({ prefix: "planter-seatbelt-" })
      const file = join(tmp, "job.sb")
      const error = yield* Effect.flip(
        writeSeatbeltProfile(
          yield* fragments,
          { readOnlyPaths: [], writablePaths: [join(tmp, "gone")], network: "deny" },
          file
        )
      )
      expect(error.message).toContain(join(tmp, "gone"))
      expect(yield* fs.exists(file)).toBe(false)
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})
