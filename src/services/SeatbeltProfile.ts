/**
 * Renders the macOS `sandbox-exec` (Seatbelt) profile a job runs under.
 *
 * The policy text lives in `profiles/*.sb` so it can be read and reviewed as
 * SBPL; this module only fills in the per-job parts (which paths, whether
 * there is network) and does so without ever letting a path be read as
 * anything but a string. Rendering is pure so that it can be tested on any
 * platform; only loading fragments and resolving paths touch the disk.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Either, Schema } from "effect"
import { join } from "node:path"

export class SeatbeltProfileError extends Schema.TaggedError<SeatbeltProfileError>()("SeatbeltProfileError", {
  message: Schema.String
}) {}

export interface SeatbeltPolicy {
  readonly readOnlyPaths: ReadonlyArray<string>
  readonly writablePaths: ReadonlyArray<string>
  readonly network: "allow" | "deny"
}

export interface SeatbeltFragments {
  readonly header: string
  readonly process: string
  readonly filesystem: string
  readonly network: string
}

// Order matters: the profile is these fragments concatenated, and SBPL wants
// `(version 1)` before any rule.
const fragmentOrder = ["header", "process", "filesystem", "network"] as const

const placeholderNames = ["READ_ONLY_PATHS", "WRITABLE_PATHS", "NETWORK_RULE"] as const
type PlaceholderName = (typeof placeholderNames)[number]

// C0 controls and DEL could end the literal or the line, or (NUL) cut the
// path short where the kernel reads it as a C string. C1 controls are
// harmless to the parser but invisible in logs, so a profile containing one
// would read differently from what it enforces. Lone surrogates cannot be
// written as UTF-8 at all: the file would silently name a different path.
const forbiddenInLiteral = /[\u0000-\u001f\u007f-\u009f]|[\uD800-\uDFFF]/u

/**
 * Quotes `value` as an SBPL string literal.
 *
 * Inside a correctly quoted literal, `(`, `)` and `;` are plain characters:
 * the SBPL reader only looks for the closing quote, and the only characters
 * that could reach it early are `"` and `\`, which are both escaped here.
 * So no path can close the literal and start a rule of its own.
 */
export const escapeSbplString = (value: string): Either.Either<string, SeatbeltProfileError> =>
  forbiddenInLiteral.test(value)
    ? Either.left(
      new SeatbeltProfileError({
        // JSON.stringify so the error itself shows the control character
        // instead of carrying it into logs.
        message: `Seatbelt profile string contains a control character or an unpaired surrogate: ${
          JSON.stringify(value)
        }`
      })
    )
    : Either.right(`"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`)

const dedupe = (paths: ReadonlyArray<string>): ReadonlyArray<string> => Array.from(new Set(paths))

const renderPathRule = (
  operations: string,
  paths: ReadonlyArray<string>,
  whenEmpty: string
): Either.Either<ReadonlyArray<string>, SeatbeltProfileError> =>
  Either.gen(function*() {
    // An allow rule with no filters applies to every path, so an empty list
    // must render as no rule at all, never as `(allow file-read*)`.
    if (paths.length === 0) return [`; ${whenEmpty}`]
    const filters: Array<string> = []
    for (const path of paths) {
      // Seatbelt only understands absolute paths in subpath filters and
      // refuses to compile the profile otherwise; say which path, here.
      if (!path.startsWith("/")) {
        return yield* Either.left(
          new SeatbeltProfileError({ message: `Seatbelt paths must be absolute: ${JSON.stringify(path)}` })
        )
      }
      filters.push(`  (subpath ${yield* escapeSbplString(path)})`)
    }
    return [`(allow ${operations}`, ...filters.map((filter, i) => i === filters.length - 1 ? `${filter})` : filter)]
  })

const renderNetworkRule = (network: SeatbeltPolicy["network"]): ReadonlyArray<string> =>
  network === "allow"
    ? [
      "; This job may use the network.",
      "(allow network*)",
      "; Sockets alone are not enough on macOS: DNS settings and certificate",
      "; trust (Go, Swift, anything on Security.framework) come from system",
      "; daemons over Mach. They are reachable only with the network, so a job",
      "; without it has no daemon to reach the network on its behalf.",
      "(allow mach-lookup",
      "  (global-name \"com.apple.SystemConfiguration.DNSConfiguration\")",
      "  (global-name \"com.apple.SystemConfiguration.configd\")",
      "  (global-name \"com.apple.trustd\")",
      "  (global-name \"com.apple.trustd.agent\"))"
    ]
    : [
      "; This job has no network. (deny default) already refuses it; the rule",
      "; says so explicitly for whoever reads the profile.",
      "(deny network*)"
    ]

const placeholderPattern = /\{\{([^}]*)\}\}/

const isPlaceholderName = (name: string): name is PlaceholderName =>
  (placeholderNames as ReadonlyArray<string>).includes(name)

/**
 * Renders the complete profile for one job. The result is deterministic:
 * paths keep their input order and a repeated path is rendered once.
 */
export const renderSeatbeltProfile = (
  fragments: SeatbeltFragments,
  policy: SeatbeltPolicy
): Either.Either<string, SeatbeltProfileError> =>
  Either.gen(function*() {
    const replacements: Record<PlaceholderName, ReadonlyArray<string>> = {
      READ_ONLY_PATHS: yield* renderPathRule(
        "file-read*",
        dedupe(policy.readOnlyPaths),
        "This job has no extra read-only paths."
      ),
      WRITABLE_PATHS: yield* renderPathRule(
        "file-read* file-write*",
        dedupe(policy.writablePaths),
        "This job has no writable paths."
      ),
      NETWORK_RULE: renderNetworkRule(policy.network)
    }

    const templateLines = fragmentOrder.flatMap((key, index) => [
      ...(index === 0 ? [] : [""]),
      ...fragments[key].replace(/\s+$/, "").split(/\r?\n/)
    ])

    // One pass over the template lines, so text that came from a path is
    // never scanned for placeholders again: a directory named
    // `{{WRITABLE_PATHS}}` stays a directory name.
    const seen = new Map<PlaceholderName, number>()
    const output: Array<string> = []
    for (const line of templateLines) {
      const match = placeholderPattern.exec(line)
      if (match === null) {
        output.push(line)
        continue
      }
      const name = match[1] ?? ""
      // A placeholder must be the whole line: the rule it expands to is a
      // complete top-level form and cannot sit inside another one.
      if (!isPlaceholderName(name) || line.trim() !== match[0]) {
        return yield* Either.left(
          new SeatbeltProfileError({
            message: isPlaceholderName(name)
              ? `Seatbelt fragment placeholder {{${name}}} must stand alone on its line: ${JSON.stringify(line)}`
              : `Seatbelt fragments use an unknown placeholder: {{${name}}}`
          })
        )
      }
      seen.set(name, (seen.get(name) ?? 0) + 1)
      output.push(...replacements[name])
    }

    // A fragment that lost its placeholder would quietly drop the job's
    // paths or its network rule; refuse instead of running a different
    // sandbox than the one asked for.
    for (const name of placeholderNames) {
      const count = seen.get(name) ?? 0
      if (count !== 1) {
        return yield* Either.left(
          new SeatbeltProfileError({
            message: `Seatbelt fragments must contain {{${name}}} exactly once, found it ${count} times`
          })
        )
      }
    }

    return `${output.join("\n")}\n`
  })

/**
 * Reads the four fragments from `dir` (normally the package's `profiles/`).
 */
export const loadSeatbeltFragments: (
  dir: string
) => Effect.Effect<SeatbeltFragments, SeatbeltProfileError, FileSystem.FileSystem> = Effect.fn(
  "SeatbeltProfile.loadSeatbeltFragments"
)(function*(dir: string) {
  const fs = yield* FileSystem.FileSystem
  const read = (file: string) => {
    const path = join(dir, file)
    return fs.readFileString(path).pipe(
      Effect.mapError((cause) =>
        new SeatbeltProfileError({ message: `Cannot read Seatbelt fragment ${path}: ${cause.message}` })
      )
    )
  }
  const fragments: SeatbeltFragments = {
    header: yield* read("header.sb"),
    process: yield* read("process.sb"),
    filesystem: yield* read("filesystem.sb"),
    network: yield* read("network.sb")
  }
  // Render once with an empty policy so that a broken fragment (a lost or
  // misspelt placeholder) fails when the fragments are loaded, typically at
  // daemon start, rather than on the first job that needs a sandbox.
  yield* renderSeatbeltProfile(fragments, { readOnlyPaths: [], writablePaths: [], network: "deny" })
  return fragments
})

/**
 * Resolves every path of the policy to its real path.
 *
 * Seatbelt matches the path of the file actually opened, after symlinks are
 * resolved, so a rule for `/tmp/job` never matches anything on macOS, where
 * the file really lives at `/private/tmp/job` (likewise `/var`, `/etc`, and
 * any symlinked home or project directory). A path that does not exist is
 * an error rather than being skipped, because a job whose writable cell is
 * silently missing from its profile fails in confusing ways.
 */
export const canonicalizeSeatbeltPolicy: (
  policy: SeatbeltPolicy
) => Effect.Effect<SeatbeltPolicy, SeatbeltProfileError, FileSystem.FileSystem> = Effect.fn(
  "SeatbeltProfile.canonicalizeSeatbeltPolicy"
)(function*(policy: SeatbeltPolicy) {
  const fs = yield* FileSystem.FileSystem
  const resolve = (path: string) =>
    fs.realPath(path).pipe(
      Effect.mapError((cause) =>
        new SeatbeltProfileError({
          message: cause._tag === "SystemError" && cause.reason === "NotFound"
            ? `Seatbelt policy path does not exist: ${path}`
            : `Cannot resolve Seatbelt policy path ${path}: ${cause.message}`
        })
      )
    )
  // Sequential, so the error always names the first bad path in policy
  // order, whichever lookup would have finished first.
  const readOnlyPaths = yield* Effect.forEach(policy.readOnlyPaths, resolve)
  const writablePaths = yield* Effect.forEach(policy.writablePaths, resolve)
  return { readOnlyPaths, writablePaths, network: policy.network }
})

/**
 * Canonicalizes `policy`, renders the profile and writes it to `file`.
 * Returns the rendered profile, which is worth logging when a job fails
 * with a sandbox denial.
 */
export const writeSeatbeltProfile: (
  fragments: SeatbeltFragments,
  policy: SeatbeltPolicy,
  file: string
) => Effect.Effect<string, SeatbeltProfileError, FileSystem.FileSystem> = Effect.fn(
  "SeatbeltProfile.writeSeatbeltProfile"
)(function*(fragments: SeatbeltFragments, policy: SeatbeltPolicy, file: string) {
  const fs = yield* FileSystem.FileSystem
  const canonical = yield* canonicalizeSeatbeltPolicy(policy)
  const profile = yield* renderSeatbeltProfile(fragments, canonical)
  // Private like every state file: a profile lists the paths a cell may see.
  yield* fs.writeFileString(file, profile, { mode: 0o600 }).pipe(
    Effect.mapError((cause) =>
      new SeatbeltProfileError({ message: `Cannot write Seatbelt profile ${file}: ${cause.message}` })
    )
  )
  return profile
})
