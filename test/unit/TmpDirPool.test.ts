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

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "planter-tmppool-"))
    minted = 0
  })
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }))

  it("hands a fresh id (no TMPDIR yet) while it has no spare", () => {
    const pool = makeTmpDirPool(root, newId)
    expect(pool.take()).toEqual({ id: "job-test0001", tmpReady: false })
    expect(fs.readdirSync(root)).toEqual([])
  })

  it("recycles an empty 0700 TMPDIR under a fresh id, which the next start takes with its TMPDIR made", () => {
    const pool = makeTmpDirPool(root, newId)
    const ended = jobTmp("job-ended")
    expect(pool.recycle(ended)).toBe(true)
    expect(fs.existsSync(ended), "the ended job's TMPDIR").toBe(false)
    expect(fs.readdirSync(root)).toEqual(["job-test0001"])
    const next = pool.take()
    expect(next).toEqual({ id: "job-test0001", tmpReady: true })
    const stat = fs.statSync(path.join(root, next.id))
    expect(stat.isDirectory() && (stat.mode & 0o7777)).toBe(0o700)
    expect(fs.readdirSync(path.join(root, next.id))).toEqual([])
    // Taken: the one after gets a fresh id.
    expect(pool.take()).toEqual({ id: "job-test0002", tmpReady: false })
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
    expect(pool.take()).toEqual({ id: "job-test0001", tmpReady: true })
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
    expect(pool.take()).toEqual({ id: taken.id, tmpReady: true })
    fs.writeFileSync(path.join(root, taken.id, "used"), "")
    expect(pool.giveBack(taken.id), "a TMPDIR the job wrote in").toBe(false)
  })

  it("fills up to `max` with new TMPDIRs while nothing is starting, stops when a start begins, and not after close", async () => {
    const pool = makeTmpDirPool(root, newId, 3)
    const filled = async (expected: number) => {
      for (let i = 0; i < 200 && fs.readdirSync(root).length < expected; i++) await new Promise((r) => setTimeout(r, 5))
      return fs.readdirSync(root).sort()
    }
    let starting = false
    pool.fill(() => starting)
    expect(await filled(3)).toEqual(["job-test0001", "job-test0002", "job-test0003"])
    for (const id of ["job-test0001", "job-test0002", "job-test0003"]) {
      const stat = fs.statSync(path.join(root, id))
      expect(stat.isDirectory() && (stat.mode & 0o7777), id).toBe(0o700)
    }
    // Full: a start takes one with its TMPDIR made; none is made while a start is in progress.
    const taken = pool.take()
    expect(taken.tmpReady).toBe(true)
    starting = true
    pool.fill(() => starting)
    await new Promise((r) => setTimeout(r, 30))
    expect(fs.readdirSync(root)).toHaveLength(3)
    starting = false
    pool.fill(() => starting)
    expect(await filled(4)).toHaveLength(4)
    expect(fs.readdirSync(root)).toContain("job-test0004")
    pool.close()
    expect(fs.readdirSync(root), "the taken one is the job's; the spares are gone").toEqual([taken.id])
    pool.fill(() => false)
    await new Promise((r) => setTimeout(r, 30))
    expect(fs.readdirSync(root)).toEqual([taken.id])
  })

  it("stops filling when a mkdir fails, and starts make their own TMPDIR", async () => {
    const gone = path.join(root, "gone")
    const pool = makeTmpDirPool(gone, newId, 3)
    pool.fill(() => false)
    await new Promise((r) => setTimeout(r, 30))
    expect(pool.take()).toEqual({ id: "job-test0002", tmpReady: false })
  })
})
