import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import type { JobId } from "../rpc/Ids.js"

/** At most this many spare TMPDIRs: enough for a burst of 50 starts, a few KiB of disk, no growth with jobs. */
export const MAX_SPARE_TMPDIRS = 64

/** The names of a made-ahead spare's log files inside it, until its start moves them to the logs dir. */
const SPARE_LOG_PREFIX = ".planter-spare-"
const SPARE_LOGS = [`${SPARE_LOG_PREFIX}stdout`, `${SPARE_LOG_PREFIX}stderr`]

/** The most bytes a file's list of extended attribute names, or one value, can take on Linux (XATTR_*_MAX). */
const XATTR_MAX_BYTES = 64 * 1024

/**
 * A file's extended attributes (ACLs and security labels included), names and values, as one string: "" for
 * none, undefined when they cannot be read. Linux only, through koffi.
 */
const loadXattrSignature = (): ((file: string) => string | undefined) | undefined => {
  if (process.platform !== "linux") return undefined
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
    const libc = koffi.load("libc.so.6")
    const llistxattr = libc.func("long llistxattr(const char *path, void *list, size_t size)")
    const lgetxattr = libc.func("long lgetxattr(const char *path, const char *name, void *value, size_t size)")
    const names = Buffer.alloc(XATTR_MAX_BYTES)
    const value = Buffer.alloc(XATTR_MAX_BYTES)
    return (file) => {
      const listed = llistxattr(file, names, names.length) as number
      if (listed < 0) return undefined
      if (listed === 0) return ""
      const signature: Array<string> = []
      for (const name of names.toString("latin1", 0, listed).split("\0").filter((n) => n !== "").sort()) {
        const size = lgetxattr(file, name, value, value.length) as number
        if (size < 0) return undefined
        signature.push(`${name}=${value.toString("hex", 0, size)}`)
      }
      return signature.join(";")
    }
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
 * empty, still a directory of the daemon's uid with mode 0700, and has exactly the extended attributes a new one
 * gets there (ACLs and security labels are stored as such): nothing of one job reaches the next. Its id is a
 * fresh random one, minted when it was recycled. Spares are removed when the daemon stops (`close`); after
 * a crash the next daemon's reconciler removes them with the other leftovers (they belong to no job).
 * Everything here is a few synchronous metadata calls (~20–40 µs), cheaper than a thread pool round trip.
 *
 * Where TMPDIRs are not recycled (unsandboxed jobs), `fill` makes new, never used ones ahead of the starts
 * instead, while the daemon starts no job: one `mkdir` at a time on the thread pool, stopping as soon as a start
 * is in progress. A start then takes a TMPDIR made while the daemon was idle rather than waiting for a `mkdir`
 * (~0.3 ms of ext4 kernel time each here, the thread that makes it preempting the event loop on a loaded machine).
 * Such a TMPDIR never held anything of a job; but it waits in the state dir, which an unsandboxed job's processes
 * can reach, so `take` hands on a spare (of either kind) only as it was made, and `takeLogs` moves only the empty
 * files `fill` made (a symlink planted there would send the next job's output to another file). It also holds
 * the job's two log files, made empty (0600) with it: the start renames them into the logs dir (`takeLogs`)
 * before the job's process opens them, which then creates no inode before its `exec` (two more ~0.3 ms of
 * kernel time a start); where the logs dir is on another filesystem, spares are made without them. After a crash,
 * the reconciler removes such a spare, files and all, with the other leftovers.
 */
export const makeTmpDirPool = (tmpRoot: string, newId: () => JobId, max: number = MAX_SPARE_TMPDIRS) => {
  const xattrsOf = loadXattrSignature()
  const uid = process.getuid?.()
  const spare: Array<JobId> = []
  /** The spares `fill` made, which hold their log files until `takeLogs`. */
  const withLogs = new Set<JobId>()
  let closed = false
  let filling = false
  const spareLog = (id: JobId, stream: "stdout" | "stderr") => path.join(tmpRoot, id, `${SPARE_LOG_PREFIX}${stream}`)
  /** Makes an empty 0600 file on the thread pool. */
  const makeEmptyFile = (file: string, done: (ok: boolean) => void) =>
    fs.open(file, "wx", 0o600, (error, fd) => {
      if (error !== null) return done(false)
      fs.close(fd, (closeError) => done(closeError === null))
    })

  /**
   * The extended attributes a new TMPDIR and a new file in it get here without anyone setting them: none on most
   * hosts; a security label under SELinux, an ACL under a default ACL on the state dir. Read once, from a probe
   * directory made and removed in `tmpRoot` (with a file in it); both "" (none allowed) if that fails. A spare is
   * as new only with exactly these: one whose attributes a job changed (an ACL letting others in) is never handed
   * on.
   */
  let fresh: { readonly dir: string; readonly file: string } | undefined
  const freshXattrs = () => {
    if (fresh !== undefined) return fresh
    fresh = { dir: "", file: "" }
    // Left by a crash, the next daemon's reconciler removes it with everything in `tmp` that is no running job's.
    const probe = path.join(tmpRoot, `.planter-xattr-probe-${process.pid}`)
    try {
      fs.mkdirSync(probe, { mode: 0o700 })
      const file = path.join(probe, "file")
      fs.closeSync(fs.openSync(file, "wx", 0o600))
      fresh = { dir: xattrsOf?.(probe) ?? "", file: xattrsOf?.(file) ?? "" }
    } catch {
      // No tmpRoot yet, or a full disk: none allowed.
    } finally {
      fs.rmSync(probe, { recursive: true, force: true })
    }
    return fresh
  }

  /**
   * An empty file of the daemon's, mode 0600, with a new file's attributes and no other name (a hard link to
   * another job's empty log would send the next job's output there), as `fill` makes a spare's log files.
   */
  const isEmptySpareLog = (file: string) => {
    const stat = fs.lstatSync(file, { throwIfNoEntry: false })
    return stat !== undefined && stat.isFile() && stat.nlink === 1 && stat.size === 0 &&
      (stat.mode & 0o7777) === 0o600 && stat.uid === uid &&
      (xattrsOf === undefined || xattrsOf(file) === freshXattrs().file)
  }

  /** As new: empty, or (`spareLogs`) holding nothing but a made-ahead spare's two untouched log files. */
  const isLikeNew = (dir: string, spareLogs = false) => {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false })
    if (
      stat === undefined || !stat.isDirectory() || (stat.mode & 0o7777) !== 0o700 || stat.uid !== uid ||
      xattrsOf!(dir) !== freshXattrs().dir
    ) return false
    const entries = fs.readdirSync(dir)
    if (!spareLogs) return entries.length === 0
    return entries.length === 2 && SPARE_LOGS.every((name) => entries.includes(name)) &&
      SPARE_LOGS.every((name) => isEmptySpareLog(path.join(dir, name)))
  }

  /**
   * A spare as it was made or recycled: a 0700 directory of ours, empty, or holding nothing but its two empty
   * log files (`spareLogs`, made ahead by `fill`).
   */
  const isAsMade = (dir: string, spareLogs: boolean) => {
    try {
      if (xattrsOf !== undefined) return isLikeNew(dir, spareLogs)
      const stat = fs.lstatSync(dir, { throwIfNoEntry: false })
      if (stat === undefined || !stat.isDirectory() || (stat.mode & 0o7777) !== 0o700 || stat.uid !== uid) return false
      const entries = fs.readdirSync(dir)
      if (!spareLogs) return entries.length === 0
      return entries.length === 2 && SPARE_LOGS.every((name) => isEmptySpareLog(path.join(dir, name)))
    } catch {
      return false
    }
  }

  /**
   * Whether `fill` makes a spare's log files too: not once one could not be moved to the logs dir because that
   * is on another filesystem than the TMPDIRs (a tmpfs mounted on the state dir's `tmp`, say): each such file
   * would only be made, found unmovable and removed again.
   */
  let logsAhead = true

  return {
    /**
     * The next job's id, whether its TMPDIR exists already (a recycled or made-ahead one), and whether it holds
     * the job's log files (made ahead: `takeLogs` must then move them out before the job runs).
     */
    take: (): { readonly id: JobId; readonly tmpReady: boolean; readonly logsReady: boolean } => {
      for (let id = spare.pop(); id !== undefined; id = spare.pop()) {
        const logsReady = withLogs.delete(id)
        const dir = path.join(tmpRoot, id)
        // A spare sat in the state dir, where an unsandboxed job's processes can reach it (and someone may have
        // removed it by hand): handed on only as it was made (a symlink planted for its log file would send the
        // next job's output elsewhere; anything left in it would reach the next job).
        if (isAsMade(dir, logsReady)) return { id, tmpReady: true, logsReady }
        fs.rm(dir, { recursive: true, force: true }, () => {})
      }
      return { id: newId(), tmpReady: false, logsReady: false }
    },
    /**
     * Moves a made-ahead spare's log files to where the job's process opens them (its row is on disk by then),
     * leaving its TMPDIR empty. A file that cannot be moved is removed: the process creates its own, as without
     * a spare. Throws only if the TMPDIR cannot be emptied, which the start reports as a fault of the job's files.
     */
    takeLogs: (id: JobId, stdoutPath: string, stderrPath: string): void => {
      for (const [stream, to] of [["stdout", stdoutPath], ["stderr", stderrPath]] as const) {
        const from = spareLog(id, stream)
        try {
          // Only the empty file `fill` made (checked again: `take` looked a moment ago); else the process makes its own.
          if (isEmptySpareLog(from)) {
            fs.renameSync(from, to)
            continue
          }
        } catch (error) {
          // Removed below; on another filesystem, the spares made from now on hold no log files.
          if ((error as NodeJS.ErrnoException).code === "EXDEV") logsAhead = false
        }
        fs.rmSync(from, { recursive: true, force: true })
      }
    },
    /** Keeps an ended job's TMPDIR as a spare if it is as a new one would be: false when it must be removed. */
    recycle: (dir: string): boolean => {
      if (closed || xattrsOf === undefined || spare.length >= max) return false
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
     * it is still as new (with its made-ahead log files in it, `logsInside`, when `take` said `logsReady` and
     * they were not moved): a refused start leaves the state dir as it found it. False when it must be removed.
     */
    giveBack: (id: JobId, logsInside = false): boolean => {
      if (closed || xattrsOf === undefined || spare.length >= max) return false
      try {
        if (!isLikeNew(path.join(tmpRoot, id), logsInside)) return false
        spare.push(id)
        if (logsInside) withLogs.add(id)
        return true
      } catch {
        return false
      }
    },
    /**
     * Makes new TMPDIRs until there are `max` spares, one `mkdir` at a time on the thread pool, and stops as soon
     * as `busy` (a start in progress), the daemon stops, or a `mkdir` fails (a full disk: each start then makes
     * its own, as without spares). A call while one is filling does nothing. `stopped`, if given, is called once
     * this call's filling has stopped (not for a call that did nothing).
     */
    fill: (busy: () => boolean, stopped?: () => void): void => {
      if (filling) return
      filling = true
      const halt = () => {
        filling = false
        stopped?.()
      }
      const next = () => {
        if (closed || spare.length >= max || busy()) return halt()
        const id = newId()
        const dir = path.join(tmpRoot, id)
        const stop = () => {
          fs.rm(dir, { recursive: true, force: true }, () => {})
          halt()
        }
        fs.mkdir(dir, { mode: 0o700 }, (error) => {
          if (error !== null) return halt()
          if (!logsAhead) {
            if (closed) return stop()
            spare.push(id)
            return next()
          }
          makeEmptyFile(spareLog(id, "stdout"), (stdoutMade) => {
            if (!stdoutMade) return stop()
            makeEmptyFile(spareLog(id, "stderr"), (stderrMade) => {
              if (!stderrMade || closed) return stop()
              spare.push(id)
              withLogs.add(id)
              next()
            })
          })
        })
      }
      next()
    },
    /** Removes the spares (the daemon stops); later ends remove their TMPDIRs as before. */
    close: () => {
      closed = true
      for (const id of spare.splice(0)) {
        try {
          if (withLogs.delete(id)) {
            fs.rmSync(spareLog(id, "stdout"), { force: true })
            fs.rmSync(spareLog(id, "stderr"), { force: true })
          }
          fs.rmdirSync(path.join(tmpRoot, id))
        } catch {
          // Gone already, or not empty: the next daemon's reconciler removes what is left.
        }
      }
    }
  }
}

export type TmpDirPool = ReturnType<typeof makeTmpDirPool>
