// Bundles the daemon (`npm run bundle:daemon`): dist/src/cli/planterd.js → dist/planterd-daemon.mjs, and the
// `planterd` bin, dist/planterd.mjs, which tunes glibc's allocator before it loads that bundle
// (src/cli/planterdLauncher.ts). Two packages the daemon never uses are left out
// (docs/benchmarks.md, "Daemon memory"): `ws`, which @effect/platform-node's socket modules import for
// WebSockets (it loads node's http, https, tls and zlib at start), and fast-check, which effect's Schema module
// imports for generating arbitrary values.
import * as esbuild from "esbuild"
import * as fs from "node:fs/promises"

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
        leftOut.forEach(({ contents, filter, from }, index) => {
          const namespace = `left-out-${index}`
          build.onResolve({ filter }, (args) => (from.test(args.importer) ? { path: args.path, namespace } : undefined))
          build.onLoad({ filter: /.*/, namespace }, () => ({ contents, loader: "js" }))
        })
      }
    }
  ]
})
