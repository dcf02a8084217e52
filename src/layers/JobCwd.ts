import * as fs from "node:fs"
import * as path from "node:path"
import { InvalidInput } from "../services/DomainErrors.js"

/** `cwd` resolved inside the cell dir; anything that leaves it (`..`, symlinks) is refused. */
export const resolveCwd = (cellDir: string, cwd: string | null): string | InvalidInput => {
  let cellReal: string
  try {
    cellReal = fs.realpathSync(cellDir)
  } catch {
    return new InvalidInput({ message: `the cell's directory ${cellDir} is gone: remove the cell and create it again` })
  }
  if (cwd === null || cwd === "") return cellDir
  let real: string
  try {
    real = fs.realpathSync(path.resolve(cellDir, cwd))
  } catch {
    return new InvalidInput({
      message: `--cwd ${cwd} does not exist inside the cell dir ${cellDir}: create it first or pick another`
    })
  }
  if (real !== cellReal && !real.startsWith(cellReal + path.sep)) {
    return new InvalidInput({
      message: `--cwd ${cwd} is outside the cell dir ${cellDir}: a job's working directory must stay inside its cell`
    })
  }
  if (!fs.statSync(real).isDirectory()) return new InvalidInput({ message: `--cwd ${cwd} is not a directory` })
  // Expressed under the cell dir as the sandbox mounts it, even where the state dir's path has symlinks.
  return path.join(cellDir, path.relative(cellReal, real))
}
