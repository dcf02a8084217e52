import { describe, expect, it } from "@effect/vitest"
import koffi from "koffi"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeEach } from "vitest"
import { makeTmpDirPool } from "../../src/layers/TmpDirPool.js"
import type { JobId } from "../../src/rpc/Ids.js"

const setxattr = koffi.load("libc.so.6").func(
  "int setxattr(const char *path, const char *name, const char *value, size_t size, int flags)"
)

const setxattrBytes = koffi.load("libc.so.6").func(
  "int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)"
)

/**
 * A POSIX ACL as the kernel stores it in `system.posix_acl_*` (version 2, then tag, permissions and id per
 * entry): the owner rwx, `user` (a uid) r-x, the group and others nothing, and the mask.
 */
const aclGranting = (user: number) => {
  const entries: Array<[tag: number, perm: number, id: number]> = [
    [0x01, 7, 0xffffffff], // ACL_USER_OBJ
    [0x02, 5, user], // ACL_USER
    [0x04, 0, 0xffffffff], // ACL_GROUP_OBJ
    [0x10, 5, 0xffffffff], // ACL_MASK
    [0x20, 0, 0xffffffff] // ACL_OTHER
  ]
  const blob = Buffer.alloc(4 + entries.length * 8)
  blob.writeUInt32LE(2, 0)
  entries.forEach(([tag, perm, id], i) => {
    blob.writeUInt16LE(tag, 4 + i * 8)
    blob.writeUInt16LE(perm, 6 + i * 8)
    blob.writeUInt32LE(id, 8 + i * 8)
  })
  return blob
}

describe.skipIf(process.platform !== "linux")("TmpDirPool", () => {
  let root: string
  let minted: number
  const newId = () => `job-test${String(++minted).padStart(4, "0")}` as JobId
  /** A TMPDIR as prepareTmpDir makes it. */
  const jobTmp = (id: string) => {
    const dir = path.join(root, id)
    fs.mkdirSync(dir, { mode: 0o700 })
    return dir
  }

  /** Fills `pool` until it stops (full, or `busy`). */
  const filled = (pool: ReturnType<typeof makeTmpDirPool>, busy = () => false) =>
    new Promise<void>((resolve) => pool.fill(busy, resolve))

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "planter-tmppool-"))
    minted = 0
  })
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }))

  it("hands a fresh id (no TMPDIR yet) while it has no spare", () => {
    const pool = makeTmpDirPool(root, newId)
    expect(pool.take()).toEqual({ id: "job-test0001", tmpReady: false, logsReady: false })
    expect(fs.readdirSync(root)).toEqual([])
  })

  it("recycles an empty 0700 TMPDIR under a fresh id, which the next start takes with its TMPDIR made", () => {
    const pool = makeTmpDirPool(root, newId)
    const ended = jobTmp("job-ended")
    expect(pool.recycle(ended)).toBe(true)
    expect(fs.existsSync(ended), "the ended job's TMPDIR").toBe(false)
    expect(fs.readdirSync(root)).toEqual(["job-test0001"])
    const next = pool.take()
    expect(next).toEqual({ id: "job-test0001", tmpReady: true, logsReady: false })
    const stat = fs.statSync(path.join(root, next.id))
    expect(stat.isDirectory() && (stat.mode & 0o7777)).toBe(0o700)
    expect(fs.readdirSync(path.join(root, next.id))).toEqual([])
    // Taken: the one after gets a fresh id.
    expect(pool.take()).toEqual({ id: "job-test0002", tmpReady: false, logsReady: false })
  })

  it("never recycles a TMPDIR a job left anything in, changed the mode of, or gave extended attributes", () => {
    const pool = makeTmpDirPool(root, newId)
    const withFile = jobTmp("job-file")
    fs.writeFileSync(path.join(withFile, "scratch"), "x")
    const withDir = jobTmp("job-dir")
    fs.mkdirSync(path.join(withDir, "sub"))
    const opened = jobTmp("job-mode")
    fs.chmodSync(opened, 0o777)
    const marked = jobTmp("job-xattr")
    expect(setxattr(marked, "user.planter.test", "secret", 6, 0), "setxattr (user xattrs on this file system)").toBe(0)
    const linked = path.join(root, "job-link")
    fs.symlinkSync(jobTmp("elsewhere"), linked)
    for (const dir of [withFile, withDir, opened, marked, linked, path.join(root, "job-missing")]) {
      expect(pool.recycle(dir), dir).toBe(false)
    }
    expect(fs.readdirSync(root).sort()).toEqual([
      "elsewhere",
      "job-dir",
      "job-file",
      "job-link",
      "job-mode",
      "job-xattr"
    ])
    expect(pool.take().tmpReady).toBe(false)
  })

  it("keeps at most `max` spares, skips one removed by hand, and removes them all on close", () => {
    const pool = makeTmpDirPool(root, newId, 2)
    expect([pool.recycle(jobTmp("job-a")), pool.recycle(jobTmp("job-b")), pool.recycle(jobTmp("job-c"))]).toEqual([
      true,
      true,
      false
    ])
    expect(fs.readdirSync(root).sort()).toEqual(["job-c", "job-test0001", "job-test0002"])
    fs.rmdirSync(path.join(root, "job-test0002"))
    expect(pool.take()).toEqual({ id: "job-test0001", tmpReady: true, logsReady: false })
    expect(pool.recycle(jobTmp("job-d"))).toBe(true)
    pool.close()
    expect(fs.readdirSync(root).sort()).toEqual(["job-c", "job-test0001"])
    // Closed: later ends remove their TMPDIRs as before.
    expect(pool.recycle(jobTmp("job-e"))).toBe(false)
  })

  it("takes back the unused TMPDIR of a refused start under the same id", () => {
    const pool = makeTmpDirPool(root, newId)
    expect(pool.recycle(jobTmp("job-ended"))).toBe(true)
    const taken = pool.take()
    expect(pool.giveBack(taken.id)).toBe(true)
    expect(fs.readdirSync(root)).toEqual([taken.id])
    expect(pool.take()).toEqual({ id: taken.id, tmpReady: true, logsReady: false })
    fs.writeFileSync(path.join(root, taken.id, "used"), "")
    expect(pool.giveBack(taken.id), "a TMPDIR the job wrote in").toBe(false)
  })

  it("fills up to `max` with new TMPDIRs while nothing is starting, stops when a start begins, and not after close", async () => {
    const pool = makeTmpDirPool(root, newId, 3)
    const filled = async (expected: number) => {
      for (let i = 0; i < 1000 && fs.readdirSync(root).length < expected; i++) {
        await new Promise((r) => setTimeout(r, 5))
      }
      return fs.readdirSync(root).sort()
    }
    let starting = false
    pool.fill(() => starting)
    expect(await filled(3)).toEqual(["job-test0001", "job-test0002", "job-test0003"])
    for (const id of ["job-test0001", "job-test0002", "job-test0003"]) {
      const stat = fs.statSync(path.join(root, id))
      expect(stat.isDirectory() && (stat.mode & 0o7777), id).toBe(0o700)
    }
    // Full: a start takes one with its TMPDIR made, holding the job's two empty 0600 log files until takeLogs
    // moves them where the job's process opens them, which leaves the TMPDIR empty.
    const taken = pool.take()
    expect(taken).toMatchObject({ tmpReady: true, logsReady: true })
    expect(fs.readdirSync(path.join(root, taken.id)).sort()).toEqual([".planter-spare-stderr", ".planter-spare-stdout"])
    const logs = fs.mkdtempSync(path.join(os.tmpdir(), "planter-tmppool-logs-"))
    try {
      pool.takeLogs(taken.id, path.join(logs, "out.log"), path.join(logs, "err.log"))
      expect(fs.readdirSync(path.join(root, taken.id)), "the job's TMPDIR").toEqual([])
      for (const file of ["out.log", "err.log"]) {
        const stat = fs.statSync(path.join(logs, file))
        expect([stat.size, stat.mode & 0o7777], file).toEqual([0, 0o600])
      }
      // A file that cannot be moved (its logs dir is gone) is removed: the job's process creates its own.
      const other = pool.take()
      pool.takeLogs(other.id, path.join(logs, "gone", "out.log"), path.join(logs, "gone", "err.log"))
      expect(fs.readdirSync(path.join(root, other.id))).toEqual([])
      fs.rmdirSync(path.join(root, other.id))
    } finally {
      fs.rmSync(logs, { recursive: true, force: true })
    }
    starting = true
    pool.fill(() => starting)
    await new Promise((r) => setTimeout(r, 30))
    expect(fs.readdirSync(root)).toHaveLength(2)
    starting = false
    pool.fill(() => starting)
    expect(await filled(4)).toHaveLength(4)
    expect(fs.readdirSync(root)).toEqual(expect.arrayContaining(["job-test0004", "job-test0005"]))
    // The last spare is listed once its two files are made: then the pool is full and filling has stopped.
    const complete = (id: string) => fs.readdirSync(path.join(root, id)).length === 2
    for (let i = 0; i < 1000 && !complete("job-test0005"); i++) await new Promise((r) => setTimeout(r, 5))
    await new Promise((r) => setTimeout(r, 20))
    pool.close()
    expect(fs.readdirSync(root), "the taken one is the job's; the spares are gone").toEqual([taken.id])
    pool.fill(() => false)
    await new Promise((r) => setTimeout(r, 30))
    expect(fs.readdirSync(root)).toEqual([taken.id])
  })

  it("removes a spare whose making was under way when it closed", async () => {
    const pool = makeTmpDirPool(root, newId, 3)
    pool.fill(() => false)
    for (let i = 0; i < 1000 && fs.readdirSync(root).length === 0; i++) await new Promise((r) => setImmediate(r))
    pool.close()
    for (let i = 0; i < 1000 && fs.readdirSync(root).length > 0; i++) await new Promise((r) => setTimeout(r, 5))
    expect(fs.readdirSync(root)).toEqual([])
  })

  it("takes back a made-ahead TMPDIR of a refused start with its untouched log files, and nothing else", async () => {
    const pool = makeTmpDirPool(root, newId, 2)
    pool.fill(() => false)
    for (let i = 0; i < 1000 && fs.readdirSync(root).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 5))
    }
    await new Promise((r) => setTimeout(r, 20))
    const taken = pool.take()
    expect(taken.logsReady).toBe(true)
    expect(pool.giveBack(taken.id, true)).toBe(true)
    expect(pool.take()).toEqual({ id: taken.id, tmpReady: true, logsReady: true })
    fs.writeFileSync(path.join(root, taken.id, ".planter-spare-stdout"), "written")
    expect(pool.giveBack(taken.id, true), "a log file with something in it").toBe(false)
    const other = pool.take()
    fs.writeFileSync(path.join(root, other.id, "extra"), "")
    expect(pool.giveBack(other.id, true), "a TMPDIR with another file").toBe(false)
  })

  it("never hands on a made-ahead TMPDIR a process changed while it waited, nor moves a log file it replaced", async () => {
    const pool = makeTmpDirPool(root, newId, 4)
    await filled(pool)
    expect(fs.readdirSync(root)).toHaveLength(4)
    const target = path.join(os.tmpdir(), `planter-tmppool-target-${process.pid}`)
    fs.writeFileSync(target, "keep")
    const logs = fs.mkdtempSync(path.join(os.tmpdir(), "planter-tmppool-logs-"))
    try {
      // An unsandboxed job sees the spares beside its own TMPDIR: it plants a symlink in one, a file in another,
      // and a hard link to another job's empty log in the third.
      const [planted, extra, linked] = fs.readdirSync(root).sort().reverse()
      const otherLog = path.join(logs, "other-job.stderr.log")
      fs.writeFileSync(otherLog, "", { mode: 0o600 })
      fs.rmSync(path.join(root, linked!, ".planter-spare-stdout"))
      fs.linkSync(otherLog, path.join(root, linked!, ".planter-spare-stdout"))
      fs.rmSync(path.join(root, planted!, ".planter-spare-stdout"))
      fs.symlinkSync(target, path.join(root, planted!, ".planter-spare-stdout"))
      fs.writeFileSync(path.join(root, extra!, "left-for-the-next-job"), "x")
      const taken = pool.take()
      expect(taken.id, "the one spare left as it was made").not.toMatch(new RegExp(`${planted}|${extra}|${linked}`))
      expect(taken).toMatchObject({ tmpReady: true, logsReady: true })
      // Replaced between take and takeLogs: not moved (the job's process creates its own log file).
      fs.rmSync(path.join(root, taken.id, ".planter-spare-stderr"))
      fs.symlinkSync(target, path.join(root, taken.id, ".planter-spare-stderr"))
      pool.takeLogs(taken.id, path.join(logs, "out.log"), path.join(logs, "err.log"))
      expect(fs.readdirSync(logs).sort()).toEqual(["other-job.stderr.log", "out.log"])
      expect(fs.readdirSync(path.join(root, taken.id))).toEqual([])
      expect(fs.readFileSync(target, "utf8")).toBe("keep")
      expect(pool.take().tmpReady, "no spare left").toBe(false)
      for (let i = 0; i < 1000 && fs.readdirSync(root).length > 1; i++) await new Promise((r) => setTimeout(r, 5))
      expect(fs.readdirSync(root), "the changed spares are removed").toEqual([taken.id])
      expect(fs.statSync(otherLog).nlink, "the other job's log has its one name back").toBe(1)
    } finally {
      fs.rmSync(target, { force: true })
      fs.rmSync(logs, { recursive: true, force: true })
    }
  })

  it("never hands on a recycled TMPDIR something was put in while it waited", () => {
    const pool = makeTmpDirPool(root, newId)
    expect(pool.recycle(jobTmp("job-ended"))).toBe(true)
    const [spare] = fs.readdirSync(root)
    fs.writeFileSync(path.join(root, spare!, "left-for-the-next-job"), "x")
    expect(pool.take(), "a fresh id, its TMPDIR still to make").toEqual({
      id: "job-test0002",
      tmpReady: false,
      logsReady: false
    })
  })

  it("where every new TMPDIR gets an ACL (a default ACL on the state dir), hands spares on unless a job changed it", async () => {
    const acl = aclGranting(65534)
    expect(setxattrBytes(root, "system.posix_acl_default", acl, acl.length, 0), "a default ACL (ext4, tmpfs)").toBe(0)
    const pool = makeTmpDirPool(root, newId, 3)
    // An ended job's TMPDIR, made under the default ACL as every TMPDIR here is, is recycled as before.
    expect(pool.recycle(jobTmp("job-ended"))).toBe(true)
    expect(pool.take()).toEqual({ id: "job-test0001", tmpReady: true, logsReady: false })
    await filled(pool)
    expect(fs.readdirSync(root)).toHaveLength(4)
    // A job gives one spare an ACL of its own (letting another user in); the others are as the system made them.
    const spares = fs.readdirSync(root).filter((id) => id !== "job-test0001").sort()
    const widened = aclGranting(1000)
    expect(setxattrBytes(path.join(root, spares[2]!), "system.posix_acl_access", widened, widened.length, 0)).toBe(0)
    const handed = [pool.take(), pool.take(), pool.take()]
    expect(handed.map(({ id }) => id)).toEqual([spares[1], spares[0], expect.not.stringMatching(spares[2]!)])
    expect(handed.map(({ tmpReady, logsReady }) => [tmpReady, logsReady])).toEqual([[true, true], [true, true], [
      false,
      false
    ]])
    for (let i = 0; i < 1000 && fs.existsSync(path.join(root, spares[2]!)); i++) {
      await new Promise((r) => setTimeout(r, 5))
    }
    expect(fs.existsSync(path.join(root, spares[2]!)), "the changed spare is removed").toBe(false)
    pool.close()
  })

  /** A writable dir on another filesystem than the TMPDIRs' (tmpfs beside a disk), where the machine has one. */
  const otherFilesystem = ["/dev/shm", "/run", "/var/tmp"].find((dir) => {
    try {
      fs.accessSync(dir, fs.constants.W_OK)
      return fs.statSync(dir).dev !== fs.statSync(os.tmpdir()).dev
    } catch {
      return false
    }
  })

  it.skipIf(otherFilesystem === undefined)(
    "makes spares without log files once the logs dir turns out to be on another filesystem",
    async () => {
      const pool = makeTmpDirPool(root, newId, 2)
      await filled(pool)
      const logs = fs.mkdtempSync(path.join(otherFilesystem!, "planter-tmppool-logs-"))
      try {
        const first = pool.take()
        expect(first.logsReady).toBe(true)
        // The rename fails (EXDEV): the spare's files are removed and the job's process creates its own.
        pool.takeLogs(first.id, path.join(logs, "out.log"), path.join(logs, "err.log"))
        expect(fs.readdirSync(path.join(root, first.id))).toEqual([])
        expect(fs.readdirSync(logs)).toEqual([])
        // The one made before that still has its files; the ones made after it have none, and are handed on.
        const second = pool.take()
        expect(second.logsReady).toBe(true)
        await filled(pool)
        const spares = fs.readdirSync(root).filter((id) => id !== first.id && id !== second.id)
        expect(spares).toHaveLength(2)
        for (const id of spares) expect(fs.readdirSync(path.join(root, id)), id).toEqual([])
        expect(pool.take()).toMatchObject({ tmpReady: true, logsReady: false })
      } finally {
        fs.rmSync(logs, { recursive: true, force: true })
        pool.close()
      }
    }
  )

  it("stops filling when a mkdir fails, and starts make their own TMPDIR", async () => {
    const gone = path.join(root, "gone")
    const pool = makeTmpDirPool(gone, newId, 3)
    pool.fill(() => false)
    await new Promise((r) => setTimeout(r, 30))
    expect(pool.take()).toEqual({ id: "job-test0002", tmpReady: false, logsReady: false })
  })
})
