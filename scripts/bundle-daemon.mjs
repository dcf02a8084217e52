// Bundles the daemon (`npm run bundle:daemon`): dist/src/cli/planterd.js → dist/planterd-daemon.mjs, and the
// `planterd` bin, dist/planterd.mjs, which tunes glibc's allocator before it loads that bundle
// (src/cli/planterdLauncher.ts). Two packages the daemon never uses are left out
// (docs/benchmarks.md, "Daemon memory"): `ws`, which @effect/platform-node's socket modules import for
// WebSockets (it loads node's http, https, tls and zlib at start), and fast-check, which effect's Schema module
// imports for generating arbitrary values.
import * as esbuild from "esbuild"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/** Modules replaced by a stand-in that fails clearly if the daemon ever reaches it. */
const leftOut = [
  {
    filter: /^ws$/,
    from: /./,
    contents: `
      const absent = (name) => class { constructor() { throw new Error("planterd is built without WebSocket support (" + name + ")") } }
      export const WebSocket = absent("WebSocket")
      export const WebSocketServer = absent("WebSocketServer")
      export default { WebSocket, WebSocketServer }`
  },
  {
    filter: /^\.\/FastCheck\.js$/,
    from: /[\\/]node_modules[\\/]effect[\\/]/,
    contents: `
      export const array = () => { throw new Error("planterd is built without fast-check: Schema arbitraries are not available") }`
  }
]

/**
 * Node built-ins the daemon's bundle does not load at start (docs/benchmarks.md, "Start-up compaction"):
 * - node:crypto (0.5–2 MB of RSS: ~30 modules and OpenSSL's set-up) is only ever asked for randomBytes, by the
 *   daemon's ids and tokens and by @effect/platform-node's temp-file names; /dev/urandom serves it
 *   (src/layers/KernelRandom.ts). A named import of anything else fails the build.
 * - node:readline (~0.6 MB) is imported by @effect/platform-node's Terminal, which the daemon never reads
 *   from: it is loaded on first use instead.
 */
const servedElsewhere = [
  { filter: /^(node:)?crypto$/, path: path.resolve("dist/src/layers/KernelRandom.js") },
  { filter: /^(node:)?readline$/, path: "planter-lazy-readline", namespace: "lazy-readline" }
]
const lazyReadline = `
  import { createRequire } from "node:module"
  const readline = () => createRequire(import.meta.url)("node:readline")
  export const createInterface = (...args) => readline().createInterface(...args)
  export const emitKeypressEvents = (...args) => readline().emitKeypressEvents(...args)`

const common = { bundle: true, platform: "node", format: "esm", target: "node20", logLevel: "warning" }

await esbuild.build({
  ...common,
  entryPoints: ["dist/src/cli/planterdLauncher.js"],
  outfile: "dist/planterd.mjs",
  external: ["koffi"]
})
await fs.chmod("dist/planterd.mjs", 0o755)

await esbuild.build({
  ...common,
  entryPoints: ["dist/src/cli/planterd.js"],
  outfile: "dist/planterd-daemon.mjs",
  external: ["msgpackr-extract", "better-sqlite3", "koffi"],
  minifyWhitespace: true,
  minifySyntax: true,
  banner: {
    js:
      "import { createRequire as __planterRequire } from 'node:module'; const require = __planterRequire(import.meta.url);"
  },
  plugins: [
    {
      name: "left-out",
      setup(build) {
        servedElsewhere.forEach(({ filter, namespace, path: to }) =>
          build.onResolve({ filter }, () => (namespace === undefined ? { path: to } : { path: to, namespace }))
        )
        build.onLoad({ filter: /.*/, namespace: "lazy-readline" }, () => ({ contents: lazyReadline, loader: "js" }))
        leftOut.forEach(({ contents, filter, from }, index) => {
          const namespace = `left-out-${index}`
          build.onResolve({ filter }, (args) => (from.test(args.importer) ? { path: args.path, namespace } : undefined))
          build.onLoad({ filter: /.*/, namespace }, () => ({ contents, loader: "js" }))
        })
      }
    }
  ]
})
