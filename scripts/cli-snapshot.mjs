// Builds the `planter` bin's fast start: dist/planter (the shell wrapper,
// src/cli/planter.sh), the entry of the CLI's V8 startup snapshot
// (dist/planter-snapshot.cjs: src/cli/snapshot.ts bundled, with no path of
// this checkout in it) and the V8 flags it is built and started with
// (dist/planter-snapshot.flags); then, where this node can make one, the
// snapshot itself (scripts/cli-snapshot-blob.mjs, which the package also
// runs where it is installed). Run by `npm run bundle:cli` after dist/src is
// compiled.
import * as esbuild from "esbuild"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const dist = path.join(root, "dist")
const entry = path.join(dist, "planter-snapshot.cjs")
const wrapper = path.join(dist, "planter")

/**
 * V8 flags the snapshot is built and started with (a blob only loads with
 * the flags it was built with).
 */
const FLAGS = process.env.PLANTER_SNAPSHOT_FLAGS ? process.env.PLANTER_SNAPSHOT_FLAGS.split(" ") : []

fs.writeFileSync(path.join(dist, "planter-snapshot.flags"), `${FLAGS.join(" ")}\n`)
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
const requireShim = `const __planterFrom = () => {
  const path = require("node:path");
  const at = process.execArgv.indexOf("--snapshot-blob");
  const blob = at < 0 ? undefined : process.execArgv[at + 1];
  return path.join(blob === undefined ? __dirname : path.dirname(path.resolve(blob)), "planter.cjs");
};
const __planterRequire = (() => {
  const builtin = require;
  const v8 = builtin("node:v8");
  let real;
  return (id) => {
    if (v8.startupSnapshot.isBuildingSnapshot()) return builtin(id);
    real ??= builtin("node:module").createRequire(__planterFrom());
    return real(id);
  };
})();
// Where the blob is built (the package's dist, wherever it is installed); once started from the blob, where the
// blob is now: a package moved after its install still finds its native modules (koffi) beside it.
let __planter_import_meta_url = require("node:url").pathToFileURL(__planterFrom()).href;
if (require("node:v8").startupSnapshot.isBuildingSnapshot()) {
  require("node:v8").startupSnapshot.addDeserializeCallback(() => {
    __planter_import_meta_url = require("node:url").pathToFileURL(__planterFrom()).href;
  });
}
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

const blob = spawnSync(process.execPath, [path.join(root, "scripts", "cli-snapshot-blob.mjs")], { stdio: "inherit" })
if (blob.status !== 0) process.exit(blob.status ?? 1)
