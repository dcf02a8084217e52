// Builds the `planter` CLI's V8 startup snapshot from the bundled entry
// (dist/planter-snapshot.cjs, made by scripts/cli-snapshot.mjs):
// dist/planter.snapshot.blob (`node --build-snapshot`, with the V8 flags in
// dist/planter-snapshot.flags) and dist/planter.snapshot.key (which node
// binary the blob belongs to, in the form the dist/planter wrapper compares:
// `stat -L -c %d:%i:%s:%Y:%Z`). A blob only loads into the node binary that
// built it, so the package ships the entry and builds the blob where it is
// installed: this is its `postinstall` (`--install`), and the build's last
// step. A node that cannot build one leaves no blob (the wrapper then runs
// dist/planter.mjs) and says so; neither the build nor an install fails for it.
//   usage: node scripts/cli-snapshot-blob.mjs [--install]
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "dist")
const entry = path.join(dist, "planter-snapshot.cjs")
const blob = path.join(dist, "planter.snapshot.blob")
const key = path.join(dist, "planter.snapshot.key")
const flagsFile = path.join(dist, "planter-snapshot.flags")

const installing = process.argv.includes("--install")

/** No blob, and why: the wrapper then runs dist/planter.mjs. */
const noSnapshot = (why, details = "") => {
  fs.rmSync(blob, { force: true })
  process.stderr.write(
    `planter: no startup snapshot for node ${process.version} (${why}): ` +
      `planter starts from dist/planter.mjs instead${details}\n`
  )
}

const build = () => {
  for (const file of [blob, key]) fs.rmSync(file, { force: true })
  const flags = fs.existsSync(flagsFile) ? fs.readFileSync(flagsFile, "utf8").trim().split(/\s+/).filter(Boolean) : []
  // The wrapper starts the blob only when NODE_OPTIONS is empty, and a blob loads only with the V8 flags it was
  // built with: it is built without the installer's NODE_OPTIONS (say, --max-old-space-size in a CI image).
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const built = spawnSync(process.execPath, [...flags, "--snapshot-blob", blob, "--build-snapshot", entry], {
    cwd: dist,
    encoding: "utf8",
    timeout: 120_000,
    env
  })
  // node warns about built-in modules it has not vetted for snapshots (module, child_process, readline); the CLI
  // only uses them once deserialized.
  const warnings = (built.stderr ?? "").split("\n").filter((line) =>
    line.trim() !== "" && !/^\(Use `node --trace/.test(line)
  )
  if (built.status !== 0 || !fs.existsSync(blob)) {
    return noSnapshot(built.error?.message ?? `exit ${built.status}`, installing ? "" : `\n${warnings.join("\n")}`)
  }
  // Started as the wrapper starts it: a blob this node cannot load is not kept (the wrapper would use it).
  const tried = spawnSync(process.execPath, [...flags, "--snapshot-blob", blob, "--", "--help"], {
    cwd: dist,
    stdio: "ignore",
    timeout: 30_000,
    env
  })
  if (tried.status !== 0) return noSnapshot(`the blob built does not start: exit ${tried.status}`)
  try {
    const identity = execFileSync("stat", ["-L", "-c", "%d:%i:%s:%Y:%Z", process.execPath], { encoding: "utf8" }).trim()
    fs.writeFileSync(key, `${identity}\n`)
  } catch (error) {
    // No GNU stat (e.g. macOS): the wrapper could not check the node binary either, so no blob.
    noSnapshot(error.message)
  }
}

// In a checkout, `npm ci` runs this before anything is built: nothing to do then.
if (fs.existsSync(entry)) {
  try {
    build()
  } catch (error) {
    noSnapshot(error.message)
  }
}
