import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import type { Spawned, SpawnFailure, SpawnRequest } from "../../src/layers/PosixSpawn.js"
import { decodeWaitStatus, posixSpawner, spawnable } from "../../src/layers/PosixSpawn.js"

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "planter-posix-spawn-"))

/** posix_spawn through the callback, as a promise. */
const spawnNow = (request: SpawnRequest) =>
  new Promise<Spawned | SpawnFailure>((resolve) => posixSpawner()!.spawn(request, resolve))

/** Runs `script` with sh through posix_spawn, its stdout and stderr into files it creates; answers its exit and output. */
const run = async (script: string, options: { env?: Record<string, string>; cwd?: string; status?: boolean } = {}) => {
  const dir = tempDir()
  const spawned = await spawnNow({
    file: "/bin/sh",
    argv: ["sh", "-c", script],
    env: options.env ?? { PATH: "/usr/bin:/bin" },
    cwd: options.cwd ?? dir,
    stdoutPath: path.join(dir, "out"),
    stderrPath: path.join(dir, "err"),
    statusPath: options.status === true ? path.join(dir, "status") : null
  })
  if (!("pid" in spawned)) throw new Error(`${spawned.code}: ${spawned.description}`)
  const exit = await spawned.exit
  const read = (name: string) =>
    fs.existsSync(path.join(dir, name)) ? fs.readFileSync(path.join(dir, name), "utf8") : ""
  return { pid: spawned.pid, exit, stdout: read("out"), stderr: read("err"), status: read("status"), dir }
}

describe.skipIf(process.platform !== "linux")("PosixSpawn", () => {
  it("is available on Linux", () => {
    expect(posixSpawner()).toBeDefined()
  })

  it("reports the exit code, and a signal by its name, as child_process does", async () => {
    expect((await run("exit 3")).exit).toEqual({ code: 3, signal: null })
    expect((await run("kill -TERM $$")).exit).toEqual({ code: null, signal: "SIGTERM" })
    expect((await run("true")).exit).toEqual({ code: 0, signal: null })
  })

  it("gives the child exactly its env, its cwd, its descriptors and stdin from /dev/null", async () => {
    const cwd = tempDir()
    const result = await run("env; pwd; echo oops >&2; echo status >&3; cat; echo end", {
      env: { PATH: "/usr/bin:/bin", ONLY: "this one" },
      cwd,
      status: true
    })
    expect(result.stdout.split("\n").filter((line) => /^[A-Z_]+=/.test(line) && !line.startsWith("PWD=")).sort())
      .toEqual(["ONLY=this one", "PATH=/usr/bin:/bin"])
    expect(result.stdout).toContain(`\n${fs.realpathSync(cwd)}\nend\n`)
    expect(result.stderr).toBe("oops\n")
    expect(result.status).toBe("status\n")
    for (const file of ["out", "err", "status"]) {
      expect(fs.statSync(path.join(result.dir, file)).mode & 0o777).toBe(0o600)
    }
    expect(fs.existsSync(path.join((await run("true")).dir, "status")), "no status file unless asked").toBe(false)
  })

  it("leads its own session and process group, with no signal ignored or blocked (the daemon ignores SIGPIPE)", async () => {
    const session = await run("cut -d' ' -f6,5 /proc/$$/stat; echo $$")
    const [ids, pid] = session.stdout.trim().split("\n")
    expect(ids).toBe(`${pid} ${pid}`)
    // grep reads its own status: the mask and dispositions it inherited through exec.
    const signals = await run("exec grep -E '^(SigIgn|SigBlk)' /proc/self/status")
    expect(signals.stdout.trim().split("\n").sort()).toEqual(["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"])
  })

  it("does not leak the daemon's own descriptors (close-on-exec, as Node opens them) into the child", async () => {
    const extra = fs.openSync(path.join(tempDir(), "extra"), "w")
    try {
      const result = await run("ls /proc/$$/fd")
      const fds = result.stdout.trim().split("\n").map(Number)
      expect(fds).toEqual(expect.arrayContaining([0, 1, 2]))
      expect(fds).not.toContain(extra)
    } finally {
      fs.closeSync(extra)
    }
  })

  it("says whether the command or its files failed, and reaps many children that end at once", async () => {
    const dir = tempDir()
    const request: SpawnRequest = {
      file: "/nonexistent/planter-no-such-command",
      argv: ["planter-no-such-command"],
      env: {},
      cwd: dir,
      stdoutPath: path.join(dir, "out"),
      stderrPath: path.join(dir, "err"),
      statusPath: null
    }
    expect(await spawnNow(request)).toMatchObject({ code: "ENOENT", stage: "exec" })
    expect(await spawnNow({ ...request, file: "/bin/true", stderrPath: path.join(dir, "gone", "err") }))
      .toMatchObject({ code: "ENOENT", stage: "files", description: "no such file or directory" })
    // An output file swapped for a symlink is not followed: what it points at is neither truncated nor written.
    const target = path.join(dir, "target")
    fs.writeFileSync(target, "keep")
    fs.symlinkSync(target, path.join(dir, "linked"))
    expect(await spawnNow({ ...request, file: "/bin/echo", argv: ["echo", "x"], stdoutPath: path.join(dir, "linked") }))
      .toMatchObject({ code: "ELOOP", stage: "files" })
    expect(fs.readFileSync(target, "utf8")).toBe("keep")
    const many = await Promise.all(
      Array.from({ length: 20 }, (_, i) => spawnNow({ ...request, file: "/bin/sh", argv: ["sh", "-c", `exit ${i}`] }))
    )
    const exits = await Promise.all(many.map((spawned) => ("pid" in spawned ? spawned.exit : Promise.reject(spawned))))
    expect(exits.map((exit) => exit.code)).toEqual(Array.from({ length: 20 }, (_, i) => i))
  })

  it("leaves to child_process what koffi would cut short", () => {
    const ok: SpawnRequest = {
      file: "/bin/true",
      argv: ["true"],
      env: { A: "b" },
      cwd: "/",
      stdoutPath: "/dev/null",
      stderrPath: "/dev/null",
      statusPath: null
    }
    expect(spawnable(ok)).toBe(true)
    expect(spawnable({ ...ok, argv: ["true", "a\u0000b"] })).toBe(false)
    expect(spawnable({ ...ok, env: { A: "b\u0000" } })).toBe(false)
    expect(spawnable({ ...ok, cwd: "/\u0000" })).toBe(false)
  })

  it("decodes wait statuses", () => {
    expect(decodeWaitStatus(0)).toEqual({ code: 0, signal: null })
    expect(decodeWaitStatus(2 << 8)).toEqual({ code: 2, signal: null })
    expect(decodeWaitStatus(9)).toEqual({ code: null, signal: "SIGKILL" })
    expect(decodeWaitStatus(15 | 0x80)).toEqual({ code: null, signal: "SIGTERM" })
  })
})
