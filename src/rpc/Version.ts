import * as fs from "node:fs"
import * as path from "node:path"
import { packageRoot } from "./PackageRoot.js"

/** The package's version, shared by the daemon and the CLI. */
export const PLANTER_VERSION: string =
  JSON.parse(fs.readFileSync(path.join(packageRoot, "package.json"), "utf8")).version
