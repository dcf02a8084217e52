// Builds the `planter` bin's fast start: dist/planter (the shell wrapper,
// src/cli/planter.sh) and, where this node can make one, the CLI's V8
// startup snapshot: dist/planter-snapshot.cjs (src/cli/snapshot.ts bundled),
// dist/planter.snapshot.blob (node --build-snapshot of it) and
// dist/planter.snapshot.key (which node binary the blob belongs to, in the
// form the wrapper compares: `stat -L -c %d:%i:%s:%Y:%Z`).
// Run by `npm run bundle:cli` after dist/src is compiled. A node that cannot
// build the snapshot leaves no blob (the wrapper then runs dist/planter.mjs)
// and says so; the build does not fail for it.
import * as esbuild from "esbuild"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const dist = path.join(root, "dist")
const entry = path.join(dist, "planter-snapshot.cjs")
const blob = path.join(dist, "planter.snapshot.blob")
const key = path.join(dist, "planter.snapshot.key")
const wrapper = path.join(dist, "planter")

/**
 * V8 flags the snapshot is built and started with (a blob only loads with
 * the flags it was built with).
 */
const FLAGS = process.env.PLANTER_SNAPSHOT_FLAGS ? process.env.PLANTER_SNAPSHOT_FLAGS.split(" ") : []

for (const file of [blob, key]) fs.rmSync(file, { force: true })
fs.writeFileSync(
  wrapper,
  fs.readFileSync(path.join(root, "src", "cli", "planter.sh"), "utf8").replace("@SNAPSHOT_FLAGS@", FLAGS.join(" "))
)
fs.chmodSync(wrapper, 0o755)

// The bundle's free `require` only knows node's built-in modules while the
// snapshot is built (native addons cannot be in a snapshot: msgpackr then
// goes without its optional extractor); once deserialized it is a real
// require from the directory the blob was started from (found in
// process.execArgv, which is the run's own, so a moved checkout still
// resolves), which koffi's native part needs for the log copy.
const requireShim = `const __planterRequire = (() => {
  const builtin = require;
  const v8 = builtin("node:v8");
  let real;
  const from = () => {
    const path = builtin("node:path");
    const at = process.execArgv.indexOf("--snapshot-blob");
    const blob = at < 0 ? undefined : process.execArgv[at + 1];
    return blob === undefined
      ? ${JSON.stringify(path.join(dist, "planter.cjs"))}
      : path.join(path.dirname(path.resolve(blob)), "planter.cjs");
  };
  return (id) => {
    if (v8.startupSnapshot.isBuildingSnapshot()) return builtin(id);
    real ??= builtin("node:module").createRequire(from());
    return real(id);
  };
})();
const __planter_import_meta_url = ${JSON.stringify(`file://${path.join(dist, "planter.cjs")}`)};
(function (require) {`

await esbuild.build({
  entryPoints: [path.join(dist, "src", "cli", "snapshot.js")],
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  outfile: entry,
  external: ["msgpackr-extract", "better-sqlite3"],
  logLevel: "warning",
  define: { "import.meta.url": "__planter_import_meta_url" },
  banner: { js: requireShim },
  footer: { js: "})(__planterRequire);" },
  // Less to deserialize on every start (~0.7 MB less source, ~1 MB less blob; identifiers keep their names).
  minifyWhitespace: true,
  minifySyntax: true,
  // effect/Schema reaches fast-check (120 KB, and pure-rand) only to build test arbitraries, which the CLI never
  // asks for: an empty module in its place keeps it out of every start.
  alias: { "fast-check": path.join(root, "scripts", "fast-check-stub.mjs") }
})

const built = spawnSync(process.execPath, [...FLAGS, "--snapshot-blob", blob, "--build-snapshot", entry], {
  cwd: dist,
  encoding: "utf8"
})
// node warns about built-in modules it has not vetted for snapshots (module, child_process, readline); the CLI
// only uses them once deserialized.
const warnings = (built.stderr ?? "").split("\n").filter((line) =>
  line.trim() !== "" && !/^\(Use `node --trace/.test(line)
)
if (built.status !== 0 || !fs.existsSync(blob)) {
  fs.rmSync(blob, { force: true })
  process.stderr.write(
    `cli-snapshot: no startup snapshot for node ${process.version} (${
      built.error?.message ?? `exit ${built.status}`
    }): ` +
      `planter starts from dist/planter.mjs instead\n${warnings.join("\n")}\n`
  )
} else {
  try {
    const identity = execFileSync("stat", ["-L", "-c", "%d:%i:%s:%Y:%Z", process.execPath], { encoding: "utf8" }).trim()
    fs.writeFileSync(key, `${identity}\n`)
  } catch (error) {
    // No GNU stat (e.g. macOS): the wrapper could not check the node binary either, so no blob.
    fs.rmSync(blob, { force: true })
    process.stderr.write(`cli-snapshot: no startup snapshot (${error.message}): planter starts from dist/planter.mjs\n`)
  }
}
