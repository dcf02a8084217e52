import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import type { JobId } from "../rpc/Ids.js"

/** At most this many spare TMPDIRs: enough for a burst of 50 starts, a few KiB of disk, no growth with jobs. */
export const MAX_SPARE_TMPDIRS = 64

/** `llistxattr(path, NULL, 0)`: the size of a file's list of extended attribute names (ACLs included), or -1. */
const loadListXattr = (): ((file: string) => number) | undefined => {
  if (process.platform !== "linux") return undefined
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
    const llistxattr = koffi.load("libc.so.6").func("long llistxattr(const char *path, void *list, size_t size)")
    return (file) => llistxattr(file, null, 0) as number
  } catch {
    return undefined
  }
}

/**
 * Spare TMPDIRs: an ended job's private temp dir, when it is as a new one would be, is renamed to a fresh job
 * id's TMPDIR, and the next start takes that id with its TMPDIR already made.
 *
 * Why: on ext4 without a journal (this machine's disk), the inode allocator skips every inode freed within
 * the last ~30 s, reading its inode table block each time (`recently_deleted`). A mkdir and rmdir per job
 * freed one inode a job, so each later inode creation (the next TMPDIR, the two log files the job's process
 * creates before its exec) walked past all of them: creating a job's three inodes took ~390 µs of kernel time
 * with that churn against ~130 µs without, in /tmp here (docs/benchmarks.md, "Spare TMPDIRs"). A rename
 * frees and allocates no inode.
 *
 * The caller offers only the TMPDIRs of jobs none of whose processes can have outlived them (bubblewrap's PID
 * namespace; JobSupervisorLive's `recyclesTmpDir`): a leftover process keeps the directory as its cwd or an open
 * descriptor through the rename, and would write into the next job's. A TMPDIR is recycled only when it is
 * empty, still a directory of the daemon's uid with mode 0700, and has no extended attributes (nor ACLs, which
 * are stored as such): nothing of one job reaches the next. Its id is
 * a fresh random one, minted when it was recycled. Spares are removed when the daemon stops (`close`); after
 * a crash the next daemon's reconciler removes them with the other leftovers (they belong to no job).
 * Everything here is a few synchronous metadata calls (~20–40 µs), cheaper than a thread pool round trip.
 *
 * Where TMPDIRs are not recycled (unsandboxed jobs), `fill` makes new, never used ones ahead of the starts
 * instead, while the daemon starts no job: one `mkdir` at a time on the thread pool, stopping as soon as a start
 * is in progress. A start then takes a TMPDIR made while the daemon was idle rather than waiting for a `mkdir`
 * (~0.3 ms of ext4 kernel time each here, the thread that makes it preempting the event loop on a loaded machine).
 * Such a TMPDIR never held anything of a job: nothing of one job can reach the next through it.
 */
export const makeTmpDirPool = (tmpRoot: string, newId: () => JobId, max: number = MAX_SPARE_TMPDIRS) => {
  const listXattr = loadListXattr()
  const uid = process.getuid?.()
  const spare: Array<JobId> = []
  let closed = false
  let filling = false

  const isLikeNew = (dir: string) => {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false })
    return stat !== undefined && stat.isDirectory() && (stat.mode & 0o7777) === 0o700 && stat.uid === uid &&
      listXattr!(dir) === 0 && fs.readdirSync(dir).length === 0
  }

  return {
    /** The next job's id, and whether its TMPDIR exists already (a recycled one). */
    take: (): { readonly id: JobId; readonly tmpReady: boolean } => {
      for (let id = spare.pop(); id !== undefined; id = spare.pop()) {
        // Still there unless someone removed it by hand from the daemon's state dir.
        if (fs.lstatSync(path.join(tmpRoot, id), { throwIfNoEntry: false })?.isDirectory() === true) {
          return { id, tmpReady: true }
        }
      }
      return { id: newId(), tmpReady: false }
    },
    /** Keeps an ended job's TMPDIR as a spare if it is as a new one would be: false when it must be removed. */
    recycle: (dir: string): boolean => {
      if (closed || listXattr === undefined || spare.length >= max) return false
      try {
        if (!isLikeNew(dir)) return false
        const id = newId()
        fs.renameSync(dir, path.join(tmpRoot, id))
        spare.push(id)
        return true
      } catch {
        return false
      }
    },
    /**
     * Takes back the TMPDIR of a job that did not start (it had taken `id` from `take`), under the same id, if
     * it is still as new: a refused start leaves the state dir as it found it. False when it must be removed.
     */
    giveBack: (id: JobId): boolean => {
      if (closed || listXattr === undefined || spare.length >= max) return false
      try {
        if (!isLikeNew(path.join(tmpRoot, id))) return false
        spare.push(id)
        return true
      } catch {
        return false
      }
    },
    /**
     * Makes new TMPDIRs until there are `max` spares, one `mkdir` at a time on the thread pool, and stops as soon
     * as `busy` (a start in progress), the daemon stops, or a `mkdir` fails (a full disk: each start then makes
     * its own, as without spares). A call while one is filling does nothing.
     */
    fill: (busy: () => boolean): void => {
      if (filling) return
      filling = true
      const next = () => {
        if (closed || spare.length >= max || busy()) {
          filling = false
          return
        }
        const id = newId()
        const dir = path.join(tmpRoot, id)
        fs.mkdir(dir, { mode: 0o700 }, (error) => {
          if (error !== null) {
            filling = false
            return
          }
          if (closed) {
            filling = false
            return fs.rmdir(dir, () => {})
          }
          spare.push(id)
          next()
        })
      }
      next()
    },
    /** Removes the spares (the daemon stops); later ends remove their TMPDIRs as before. */
    close: () => {
      closed = true
      for (const id of spare.splice(0)) {
        try {
          fs.rmdirSync(path.join(tmpRoot, id))
        } catch {
          // Gone already, or not empty: the next daemon's reconciler removes what is left.
        }
      }
    }
  }
}

export type TmpDirPool = ReturnType<typeof makeTmpDirPool>
