/**
 * The `planter` bin (dist/planter.mjs): starts the CLI bundle
 * (dist/planter.cjs) from V8's code cache when there is one for this node,
 * so a command does not parse and compile 1.8 MB of JavaScript first.
 *
 * Node 20 has no module compile cache (node:module enableCompileCache is
 * Node 22), so the bundle is a CommonJS script run through vm.Script with
 * `cachedData`. The cache (dist/planter.cjs.cache) is written once, at
 * build time (`PLANTER_WRITE_COMPILE_CACHE=1 node dist/planter.mjs
 * --help`), next to the code it belongs to and as trusted as it: the CLI
 * never writes it when it runs for a user. V8 checks the cache against
 * the source's length and its own version and flags; a cache that does
 * not fit (another node) is ignored and the bundle compiles as usual.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"

const bundle = path.join(path.dirname(fileURLToPath(import.meta.url)), "planter.cjs")
const cacheFile = `${bundle}.cache`

const readCache = (): Buffer | undefined => {
  try {
    return fs.readFileSync(cacheFile)
  } catch {
    return undefined
  }
}

// The bundle's own `#!` line is not JavaScript inside a function.
const source = fs.readFileSync(bundle, "utf8").replace(/^#!.*/, "")
// Writing it (the build) starts from no cache: V8 checks a cache only against the source's length, so the
// previous build's cache would be taken for a new bundle of the same length, and its stale code kept.
const cachedData = process.env.PLANTER_WRITE_COMPILE_CACHE === "1" ? undefined : readCache()
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
  filename: bundle,
  ...(cachedData !== undefined ? { cachedData } : {})
})

if (process.env.PLANTER_WRITE_COMPILE_CACHE === "1") {
  // After the run: the cache then holds the functions the run compiled too.
  process.once("exit", () => fs.writeFileSync(cacheFile, script.createCachedData()))
}

const main = script.runInThisContext() as (
  exports: unknown,
  require: NodeJS.Require,
  module: { exports: unknown },
  filename: string,
  dirname: string
) => void
const module = { exports: {} }
main(module.exports, createRequire(bundle), module, bundle, path.dirname(bundle))
