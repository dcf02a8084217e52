// Keeps mise.toml in step with package.json: every npm script must have a
// mise task that runs it (`run = "npm run NAME"`, or `npm test` / `npm start`).
// Run by `npm run lint`; exits 1 naming each script without a task.
import { readFileSync } from "node:fs"

const scripts = Object.keys(JSON.parse(readFileSync("package.json", "utf8")).scripts ?? {})
const runs = new Set()
for (const match of readFileSync("mise.toml", "utf8").matchAll(/^run\s*=\s*"npm (?:run )?([^"\s]+)[^"]*"/gm)) {
  runs.add(match[1])
}
// npm runs `preX`/`postX` itself around `X`: they are part of X's task, not tasks of their own.
const isLifecycleHook = (name) => /^(pre|post)/.test(name) && scripts.includes(name.replace(/^(pre|post)/, ""))
// And those npm runs when the package is installed or packed, which nobody runs as a task.
const installHooks = new Set(["preinstall", "install", "postinstall", "prepare", "prepack", "postpack"])
const missing = scripts.filter((name) => !runs.has(name) && !isLifecycleHook(name) && !installHooks.has(name))
if (missing.length > 0) {
  console.error(
    `mise.toml has no task for the npm script(s) ${missing.join(", ")}: add a [tasks.NAME] whose run is "npm run NAME"`
  )
  process.exit(1)
}
console.log(`mise.toml: a task for each of the ${scripts.length} npm scripts`)
