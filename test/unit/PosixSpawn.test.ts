import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import type { SpawnRequest } from "../../src/layers/PosixSpawn.js"
import { decodeWaitStatus, posixSpawner, spawnable } from "../../src/layers/PosixSpawn.js"

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "planter-posix-spawn-"))

/** Runs `script` with sh through posix_spawn, its stdout and stderr into files; answers its exit and output. */
const run = async (script: string, options: { env?: Record<string, string>; cwd?: string; status?: boolean } = {}) => {
  const dir = tempDir()
  const out = fs.openSync(path.join(dir, "out"), "w")
  const err = fs.openSync(path.join(dir, "err"), "w")
  const status = options.status === true ? fs.openSync(path.join(dir, "status"), "w") : null
  try {
    const spawned = posixSpawner()!.spawn({
      file: "/bin/sh",
      argv: ["sh", "-c", script],
      env: options.env ?? { PATH: "/usr/bin:/bin" },
      cwd: options.cwd ?? dir,
      stdoutFd: out,
      stderrFd: err,
      statusFd: status
    })
    if (!("pid" in spawned)) throw new Error(spawned.message)
    const exit = await spawned.exit
    const read = (name: string) =>
      fs.existsSync(path.join(dir, name)) ? fs.readFileSync(path.join(dir, name), "utf8") : ""
    return { pid: spawned.pid, exit, stdout: read("out"), stderr: read("err"), status: read("status"), dir }
  } finally {
    for (const fd of [out, err, status]) if (fd !== null) fs.closeSync(fd)
  }
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
  })

  it("leads its own session and process group, with no signal ignored or blocked (the daemon ignores SIGPIPE)", async () => {
    const result = await run(
      "cut -d' ' -f6,5 /proc/$$/stat; grep -E '^(SigIgn|SigBlk)' /proc/$$/status; echo $$"
    )
    const lines = result.stdout.trim().split("\n")
    const pid = lines.at(-1)!
    expect(lines[0]).toBe(`${pid} ${pid}`)
    expect(lines.slice(1, 3).sort()).toEqual(["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"])
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

  it("refuses a missing executable with its errno, and reaps many children that end at once", async () => {
    const dir = tempDir()
    const out = fs.openSync(path.join(dir, "out"), "w")
    const request: SpawnRequest = {
      file: "/nonexistent/planter-no-such-command",
      argv: ["planter-no-such-command"],
      env: {},
      cwd: dir,
      stdoutFd: out,
      stderrFd: out,
      statusFd: null
    }
    expect(posixSpawner()!.spawn(request)).toMatchObject({ code: "ENOENT" })
    const many = Array.from(
      { length: 20 },
      (_, i) => posixSpawner()!.spawn({ ...request, file: "/bin/sh", argv: ["sh", "-c", `exit ${i}`] })
    )
    const exits = await Promise.all(many.map((spawned) => ("pid" in spawned ? spawned.exit : Promise.reject(spawned))))
    expect(exits.map((exit) => exit.code)).toEqual(Array.from({ length: 20 }, (_, i) => i))
    fs.closeSync(out)
  })

  it("leaves to child_process what koffi would cut short, and low descriptors", () => {
    const ok: SpawnRequest = {
      file: "/bin/true",
      argv: ["true"],
      env: { A: "b" },
      cwd: "/",
      stdoutFd: 10,
      stderrFd: 11,
      statusFd: null
    }
    expect(spawnable(ok)).toBe(true)
    expect(spawnable({ ...ok, argv: ["true", "a\u0000b"] })).toBe(false)
    expect(spawnable({ ...ok, env: { A: "b\u0000" } })).toBe(false)
    expect(spawnable({ ...ok, stdoutFd: 2 })).toBe(false)
  })

  it("decodes wait statuses", () => {
    expect(decodeWaitStatus(0)).toEqual({ code: 0, signal: null })
    expect(decodeWaitStatus(2 << 8)).toEqual({ code: 2, signal: null })
    expect(decodeWaitStatus(9)).toEqual({ code: null, signal: "SIGKILL" })
    expect(decodeWaitStatus(15 | 0x80)).toEqual({ code: null, signal: "SIGTERM" })
  })
})
