import * as fs from "node:fs"
import * as path from "node:path"
import type { Cell } from "../rpc/Models.js"
import type { DaemonConfigShape } from "../services/DaemonConfig.js"
import { InvalidInput } from "../services/DomainErrors.js"

/** Host views no job may be granted: each job gets its own /proc and /dev, and none of /sys or /run. */
const KERNEL_FILESYSTEMS = ["/proc", "/sys", "/dev", "/run"]

const realpathOr = (file: string) => {
  try {
    return fs.realpathSync(file)
  } catch {
    return file
  }
}

const isInside = (child: string, parent: string) =>
  child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep)

/**
 * What a cell may be granted with `--read`: a path that exists and exposes
 * neither the daemon (state dir, socket) nor the host's kernel and runtime
 * views (/proc would show the daemon's own root, fds and environment).
 * Checked on the real path, so a symlink cannot smuggle one in; checked at
 * `create` and again before every job, since a grant is bound by path and
 * one swapped for a symlink after `create` would expose what it points at.
 */
export const makeReadGrantPolicy = (config: Pick<DaemonConfigShape, "stateDir" | "socketPath">) => {
  const stateReal = realpathOr(config.stateDir)
  const socketDir = realpathOr(path.dirname(path.resolve(config.socketPath)))
  const kernelReal = KERNEL_FILESYSTEMS.map(realpathOr)

  /** The grant as stored (its real path), or why it is refused. */
  const check = (raw: string): string | InvalidInput => {
    if (!path.isAbsolute(raw)) return new InvalidInput({ message: `--read ${raw}: give an absolute path` })
    let real: string
    try {
      real = fs.realpathSync(raw)
    } catch {
      return new InvalidInput({ message: `--read ${raw}: no such file or directory` })
    }
    const shown = real === raw ? raw : `${raw} (${real})`
    const kernel = KERNEL_FILESYSTEMS.find((_, i) => isInside(real, kernelReal[i]!) || isInside(kernelReal[i]!, real))
    if (kernel !== undefined) {
      return new InvalidInput({
        message:
          `--read ${shown} would expose the host's ${kernel} to jobs (the daemon's processes, devices and runtime files): jobs get their own ${
            kernel === "/run" ? "environment" : kernel
          }; grant a narrower path outside it`
      })
    }
    if (
      isInside(stateReal, real) || isInside(real, stateReal) || isInside(socketDir, real) || isInside(real, socketDir)
    ) {
      return new InvalidInput({
        message:
          `--read ${shown} would expose the daemon's state dir or socket to jobs (${stateReal}, ${socketDir}): grant a narrower path outside both`
      })
    }
    return real
  }

  /** Why a job of `cell` is refused because a grant no longer is what `create` checked, or undefined. */
  const recheck = (cell: Cell): InvalidInput | undefined => {
    for (const granted of cell.read_paths) {
      if (fs.existsSync(granted) && realpathOr(granted) === granted) continue
      const verdict = check(granted)
      const why = verdict instanceof InvalidInput ? verdict.message : `it now resolves to ${verdict}`
      return new InvalidInput({
        message:
          `the cell's --read grant ${granted} changed since the cell was created (${why}): the job is refused; remove the cell and create it again with the path you mean to grant`
      })
    }
    return undefined
  }

  return { check, recheck }
}
