import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The directory holding package.json, found by walking up from this module.
 * The same code runs from `src/` under the test runner and from `dist/src/`
 * once built, so files shipped beside it (migrations/, profiles/) are found
 * from the package root rather than a fixed relative path.
 */
export const packageRoot: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
  return dir
})()
