/**
 * The escape corpus: what a hostile job (or a client creating cells for
 * one) tries against the bubblewrap sandbox, each case asserting what the
 * attacker sees once the sandbox holds. Run against a daemon in `enforced`
 * mode as root (as CI runs) and again, for the cases that depend on who the
 * daemon is, as an unprivileged user (nobody, through setpriv).
 *
 * Every case looks from the host as well as from inside: a file an attack
 * would have written is checked for on the host, processes are found by
 * walking the host's /proc, and each denial has a control beside it that
 * shows the same probe succeeds where it should, so a pass is not a typo.
 *
 * Without bubblewrap the sandbox suites are skipped loudly, or fail when
 * PLANTER_REQUIRE_SANDBOX=1 (CI). Not run as root, only the unprivileged
 * variant is skipped (the main variant then runs as the current user).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { DaemonOptions, TestDaemon } from "../support/daemon.js"
import {
  makeTempDir,
  pidAlive,
  runNodeScript,
  startDaemon,
  startDaemonExpectingRefusal,
  stopAllDaemons,
  waitFor
} from "../support/daemon.js"
import {
  bwrap,
  bwrapEnv,
  createCell,
  jobIdOf,
  nodeReadArgs,
  onPath,
  processesWithMarker,
  sandboxDescribe,
  sandboxRequired,
  sh,
  startTimeOf
} from "../support/sandbox.js"

const describeSandbox = sandboxDescribe()

/** Real daemons, many CLI round trips, two cores: generous. */
const SLOW = 120_000
/** The shared daemons' kill grace: room for a trap that sleeps 1 s, short enough to keep the file fast. */
const GRACE_MS = 3000
const NOBODY = 65534

const myUid = process.getuid!()
const isRoot = myUid === 0
const setpriv = onPath("setpriv")
const run = `${process.pid}-${Date.now().toString(36)}`

/** A capability set with nothing in it, as /proc/<pid>/status prints it. */
const ZERO_CAPS = "0000000000000000"

// ---------------------------------------------------------------------------
// Clean-up: every process seen (by pid and start time) and every temp dir.

const seen = new Map<number, string>()
const remember = (pid: number) => {
  const startTime = startTimeOf(pid)
  if (startTime !== undefined) seen.set(pid, startTime)
}
/** Directories made outside os.tmpdir() (under the daemon user's home), removed at the end. */
const extraDirs: Array<string> = []

afterAll(async () => {
  try {
    await stopAllDaemons()
  } finally {
    // Only the very processes seen, never whatever reused their pids since.
    for (const [pid, startTime] of seen) {
      if (pidAlive(pid) && startTimeOf(pid) === startTime) process.kill(pid, "SIGKILL")
    }
    for (const dir of extraDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  }
}, SLOW)

/** Every live process whose command line carries `marker`, remembered for the clean-up. */
const markedProcesses = (marker: string) => {
  const found = processesWithMarker(marker)
  for (const entry of found) seen.set(entry.pid, entry.startTime)
  return found
}

// ---------------------------------------------------------------------------
// Attack material built on the host.

const cc = onPath("cc") ?? onPath("gcc")

/** The constructor every attack library runs: append a line naming the process to `marker`. */
const markerConstructor = (marker: string) => `
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void planter_escape(void) {
  char exe[512] = {0};
  if (readlink("/proc/self/exe", exe, sizeof exe - 1) < 0) strcpy(exe, "?");
  int fd = open(${JSON.stringify(marker)}, O_WRONLY | O_CREAT | O_APPEND, 0666);
  if (fd < 0) return;
  char line[700];
  int n = snprintf(line, sizeof line, "ran outside the sandbox: pid %d, exe %s\\n", (int)getpid(), exe);
  if (n > 0 && write(fd, line, (size_t)n) < 0) {}
  close(fd);
}
`

/** bwrap links libselinux on Debian and Ubuntu: a fake one on LD_LIBRARY_PATH is loaded by a launcher that honours it. */
const bwrapLinksSelinux = bwrap !== undefined && fs.readFileSync(bwrap).includes("libselinux.so.1")

const FAKE_SELINUX = `
int is_selinux_enabled(void) { return 0; }
int security_check_context(const char *context) { (void)context; return 0; }
int setexeccon(const char *context) { (void)context; return 0; }
int setfscreatecon(const char *context) { (void)context; return 0; }
`

const compile = (args: ReadonlyArray<string>) => {
  if (cc === undefined) {
    throw new Error("a C compiler (cc or gcc) is needed to build the attack libraries: apt-get install gcc")
  }
  const result = spawnSync(cc, args, { encoding: "utf8" })
  if (result.status !== 0) throw new Error(`${cc} ${args.join(" ")} failed:\n${result.stderr}`)
}

/**
 * An LD_PRELOAD library and a fake libselinux.so.1, whose constructors
 * append to `preloadMarker` / `libraryMarker`: absolute host paths that no
 * job can see, so only code running outside the sandbox can create them.
 */
const buildAttackLibraries = (dir: string, preloadMarker: string, libraryMarker: string) => {
  fs.writeFileSync(path.join(dir, "evil.c"), markerConstructor(preloadMarker))
  compile(["-shared", "-fPIC", "-o", path.join(dir, "evil.so"), path.join(dir, "evil.c")])
  fs.writeFileSync(path.join(dir, "selinux.c"), markerConstructor(libraryMarker) + FAKE_SELINUX)
  fs.writeFileSync(path.join(dir, "selinux.map"), "LIBSELINUX_1.0 { global: *; };\n")
  compile([
    "-shared",
    "-fPIC",
    "-Wl,-soname,libselinux.so.1",
    `-Wl,--version-script=${path.join(dir, "selinux.map")}`,
    "-o",
    path.join(dir, "libselinux.so.1"),
    path.join(dir, "selinux.c")
  ])
  return { preload: path.join(dir, "evil.so"), fakeSelinux: path.join(dir, "libselinux.so.1") }
}

/**
 * Connects to each `label=spec` argument (`tcp:HOST:PORT`, `unix:PATH`,
 * `unix:@NAME` for an abstract socket) and prints `label=connected`,
 * `label=refused CODE` or `label=timeout`. Runs inside jobs and on the host.
 */
const PROBE_JS = `
const net = require("node:net")
const probe = (spec) => new Promise((resolve) => {
  const [kind, ...rest] = spec.split(":")
  const target = rest.join(":")
  const socket = kind === "tcp"
    ? net.connect(Number(target.slice(target.lastIndexOf(":") + 1)), target.slice(0, target.lastIndexOf(":")))
    : net.connect(target.startsWith("@") ? "\\0" + target.slice(1) : target)
  const timer = setTimeout(() => { socket.destroy(); resolve("timeout") }, 5000)
  socket.on("connect", () => { clearTimeout(timer); socket.destroy(); resolve("connected") })
  socket.on("error", (error) => { clearTimeout(timer); resolve("refused " + error.code) })
})
;(async () => {
  for (const arg of process.argv.slice(2)) {
    const at = arg.indexOf("=")
    console.log(arg.slice(0, at) + "=" + (await probe(arg.slice(at + 1))))
  }
})()
`

/** `KEY: value` (or `KEY:<tab>value`, as in /proc/<pid>/status) lines of a job's output, as a record. */
const fields = (stdout: string) =>
  Object.fromEntries(
    stdout.split("\n").flatMap((line) => {
      const match = /^([^:]+):\s+(.*)$/.exec(line)
      return match ? [[match[1]!, match[2]!.trim()]] : []
    })
  )

/** `label=value` lines of the probe's output, as a record. */
const probeResults = (stdout: string) =>
  Object.fromEntries(
    stdout.split("\n").filter((line) => /^[\w-]+=/.test(line)).map((
      line
    ) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])
  )

/** The lines `prefix <label>` a job printed for each attempt that worked. */
const succeeded = (stdout: string, prefix: string) =>
  stdout.split("\n").filter((line) => line.startsWith(`${prefix} `)).map((line) => line.slice(prefix.length + 1))

/** A shell line that runs `command` silently and prints `<prefix> <label>` if it succeeded. */
const attempt = (prefix: string, label: string, command: string) =>
  `if ${command} >/dev/null 2>&1; then echo "${prefix} ${label}"; fi`

const stdoutLog = (daemon: TestDaemon, jobId: string) => path.join(daemon.stateDir, "logs", `${jobId}.stdout.log`)
const readIfExists = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "")

/** Starts `sh -c SCRIPT MARKER` as a job (no --wait) and waits until it has printed `ready`. */
const startReadyJob = async (daemon: TestDaemon, cell: string, script: string, marker: string) => {
  const job = await daemon.json(["run", cell, "--", "sh", "-c", script, marker])
  remember(job.pid)
  await waitFor(`${job.id} to print ready`, () => readIfExists(stdoutLog(daemon, job.id)).includes("ready"), 20_000)
  markedProcesses(marker)
  return job
}

// ---------------------------------------------------------------------------
// The daemon variants.

interface Variant {
  readonly label: string
  /** The uid planterd runs as, through setpriv; undefined: as this test process. */
  readonly user: number | undefined
  /** Runs the cases that do not depend on the daemon's user (create checks, symlinks, kill). */
  readonly full: boolean
}

const variants: Array<Variant> = [
  {
    label: isRoot ? "daemon run by root" : `daemon run by the current user (uid ${myUid})`,
    user: undefined,
    full: true
  },
  { label: `daemon run by an unprivileged user (nobody, uid ${NOBODY})`, user: NOBODY, full: false }
]

const unprivilegedSkipReason = !isRoot
  ? `the tests do not run as root (uid ${myUid}), so they cannot start planterd as nobody`
  : setpriv === undefined
  ? "setpriv (util-linux) is not installed"
  : undefined
if (unprivilegedSkipReason !== undefined && bwrap !== undefined) {
  if (isRoot && sandboxRequired) {
    describe("unprivileged-daemon prerequisites", () => {
      it("has setpriv", () => {
        throw new Error(
          `the unprivileged-daemon escape cases need setpriv (PLANTER_REQUIRE_SANDBOX=1): ${unprivilegedSkipReason}`
        )
      })
    })
  }
  console.warn(`\n*** SKIPPING the escape corpus against an unprivileged daemon: ${unprivilegedSkipReason}. ***\n`)
}

const describeVariant = (variant: Variant) =>
  variant.user === undefined
    ? describeSandbox
    : describe.skipIf(bwrap === undefined || unprivilegedSkipReason !== undefined)

for (const variant of variants) {
  describeVariant(variant)(`escape corpus: ${variant.label}`, { timeout: SLOW }, () => {
    let daemon: TestDaemon
    /** The daemon user's home (a temp dir made inside it), holding a secret file. */
    let home: string
    /** Host dir no job can see: the attack libraries and their markers. */
    let hostOnly: string
    let libraries: { preload: string; fakeSelinux: string }
    const secret = `escape-secret-${run}-${variant.user ?? myUid}`
    const jobUid = variant.user ?? myUid
    const ownByDaemon = (file: string) => {
      if (variant.user !== undefined) fs.chownSync(file, variant.user, variant.user)
    }
    /** A host dir granted to a cell with --read: readable by the job's user, holding one file. */
    const grantedDir = (prefix: string) => {
      const dir = makeTempDir(prefix)
      fs.chmodSync(dir, 0o755)
      fs.writeFileSync(path.join(dir, "data.txt"), "granted")
      return dir
    }
    const preloadMarker = () => path.join(hostOnly, "preload-marker")
    const libraryMarker = () => path.join(hostOnly, "library-marker")

    beforeAll(async () => {
      // The socket lives outside the state dir, so hiding it is checked on its own.
      const socketDir = makeTempDir("planter-esc-sock-")
      ownByDaemon(socketDir)
      /** The daemon's $HOME: its user's own, unless that user has none to write in (nobody: /nonexistent). */
      let daemonHome: string | undefined
      try {
        if (variant.user !== undefined) throw new Error("nobody's home is not its own")
        // $HOME of the daemon user: a temp dir made inside the real one, never its own files.
        home = fs.mkdtempSync(path.join(os.homedir(), ".planter-escape-"))
        extraDirs.push(home)
      } catch {
        home = makeTempDir("planter-esc-home-")
        ownByDaemon(home)
        daemonHome = home
      }
      fs.writeFileSync(path.join(home, "secret.txt"), secret)
      hostOnly = makeTempDir("planter-esc-host-")
      // World-writable, so that a launcher run by nobody could leave its marker: the attack must be able to show.
      fs.chmodSync(hostOnly, 0o777)
      libraries = buildAttackLibraries(hostOnly, preloadMarker(), libraryMarker())

      const options: DaemonOptions = {
        args: ["--sandbox-mode", "enforced", "--kill-grace-ms", String(GRACE_MS)],
        socketPath: path.join(socketDir, "planterd.sock"),
        env: {
          ...(daemonHome !== undefined ? { HOME: daemonHome } : {}),
          PLANTER_ESCAPE_SECRET: secret,
          ...bwrapEnv()
        },
        ...(variant.user !== undefined ? { user: variant.user } : {})
      }
      daemon = await startDaemon(options)
      const health = await daemon.json(["health"])
      // A bwrap that cannot start here (user namespaces off) must say so, not fail each case obscurely.
      if (!health.sandbox.available) {
        throw new Error(`bubblewrap is installed but unusable: ${health.sandbox.unavailable_reason}`)
      }
      expect(health.sandbox).toMatchObject({ mode: "enforced", backend: "bubblewrap", available: true })
    }, SLOW)

    afterAll(async () => {
      await daemon?.stop()
    }, SLOW)

    describe("1. no privilege", () => {
      it("a job holds no capability, cannot mount, mknod or remount a read-only grant writable, even from a new user namespace, and runs as the daemon's uid", async () => {
        const grant = grantedDir("planter-esc-grant-")
        const cell = await createCell(daemon, "privilege", ["--read", grant])
        const script = `
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status
echo "uid: $(id -u)"
mkdir "$TMPDIR/x"
mount -t tmpfs none "$TMPDIR/x" 2>/dev/null; echo "mount tmpfs: $?"
umount "$TMPDIR/x" 2>/dev/null
mknod "$TMPDIR/d" c 1 3 2>/dev/null; echo "mknod: $?"
mount -o remount,rw,bind ${grant} 2>/dev/null; echo "remount grant rw: $?"
echo pwned 2>/dev/null > ${grant}/pwned; echo "write grant: $?"
if command -v unshare >/dev/null; then
  echo "unshare: present"
  unshare -Ur sh -c '
    mount -o remount,rw,bind ${grant} 2>/dev/null; echo "userns remount grant rw: $?"
    echo pwned 2>/dev/null > ${grant}/pwned-userns; echo "userns write grant: $?"
    mknod "$TMPDIR/d2" c 1 3 2>/dev/null; echo "userns mknod: $?"
  ' 2>/dev/null
fi
echo "done: yes"`
        const result = await sh(daemon, cell.name, script)
        const seenInJob = fields(result.stdout)
        expect(seenInJob["done"], result.stdout + result.stderr).toBe("yes")

        expect.soft({
          CapInh: seenInJob["CapInh"],
          CapPrm: seenInJob["CapPrm"],
          CapEff: seenInJob["CapEff"],
          CapBnd: seenInJob["CapBnd"],
          CapAmb: seenInJob["CapAmb"],
          NoNewPrivs: seenInJob["NoNewPrivs"]
        }, "the job's /proc/self/status").toEqual({
          CapInh: ZERO_CAPS,
          CapPrm: ZERO_CAPS,
          CapEff: ZERO_CAPS,
          CapBnd: ZERO_CAPS,
          CapAmb: ZERO_CAPS,
          NoNewPrivs: "1"
        })
        // Documented: the job runs as the daemon's uid (0 under a root daemon), without its privilege.
        expect.soft(seenInJob["uid"], "id -u inside the job").toBe(String(jobUid))
        const worked = [
          "mount tmpfs",
          "mknod",
          "remount grant rw",
          "write grant",
          "userns remount grant rw",
          "userns write grant",
          "userns mknod"
        ]
          .filter((attack) => seenInJob[attack] === "0")
        expect.soft(worked, "privileged operations that succeeded inside the job").toEqual([])
        expect.soft(fs.readdirSync(grant).sort(), "the granted dir as the host sees it").toEqual(["data.txt"])
      })
    })

    describe("2. nothing of the job runs outside the sandbox", () => {
      it("LD_PRELOAD and LD_LIBRARY_PATH in the job's env never reach the launcher, yet the job sees them", async () => {
        const cell = await createCell(daemon, "preload")
        // An earlier job of the cell could have left these in its dir.
        const preload = path.join(cell.dir, "evil.so")
        fs.copyFileSync(libraries.preload, preload)
        const libDir = path.join(cell.dir, "lib")
        fs.mkdirSync(libDir)
        fs.copyFileSync(libraries.fakeSelinux, path.join(libDir, "libselinux.so.1"))
        for (const file of [preload, libDir, path.join(libDir, "libselinux.so.1")]) fs.chmodSync(file, 0o755)

        // The library works: loaded on the host, it leaves its marker (then the marker is cleared again).
        const control = spawnSync("/bin/true", [], { env: { ...process.env, LD_PRELOAD: preload } })
        expect(control.status).toBe(0)
        expect(readIfExists(preloadMarker())).toContain("ran outside the sandbox")
        fs.rmSync(preloadMarker())
        if (bwrapLinksSelinux) {
          // And the fake libselinux is one bwrap loads when LD_LIBRARY_PATH points at it.
          const loaded = spawnSync(bwrap!, ["--version"], { env: { ...process.env, LD_LIBRARY_PATH: libDir } })
          expect(loaded.status).toBe(0)
          expect(readIfExists(libraryMarker())).toContain("ran outside the sandbox")
          fs.rmSync(libraryMarker())
        } else {
          console.warn(
            `*** ${bwrap} does not link libselinux.so.1: only LD_PRELOAD can show a launcher that honours the job's env here ***`
          )
        }

        const env = ["--env", `LD_PRELOAD=${preload}`, "--env", `LD_LIBRARY_PATH=${libDir}`]
        const plain = await daemon.cli(["run", cell.name, "--wait", ...env, "--", "true"])
        const echoed = await daemon.cli([
          "run",
          cell.name,
          "--wait",
          ...env,
          "--",
          "sh",
          "-c",
          `echo "LD_PRELOAD: $LD_PRELOAD"; echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"`
        ])
        expect.soft(readIfExists(preloadMarker()), "LD_PRELOAD library ran on the host").toBe("")
        expect.soft(readIfExists(libraryMarker()), "LD_LIBRARY_PATH library ran on the host").toBe("")
        expect.soft(plain.code, plain.stderr).toBe(0)
        // The job still gets its env, inside.
        expect.soft(echoed.code, echoed.stderr).toBe(0)
        expect.soft(fields(echoed.stdout)).toEqual({ LD_PRELOAD: preload, LD_LIBRARY_PATH: libDir })
      })
    })

    describe("3. reads that must fail", () => {
      it("the state dir, the database, the socket, another cell, another job's log, $HOME, and the daemon through /proc stay out of reach", async () => {
        const cellA = await createCell(daemon, "reads-a", nodeReadArgs())
        const cellB = await createCell(daemon, "reads-b")
        fs.writeFileSync(path.join(cellA.dir, "own.txt"), "mine")
        fs.writeFileSync(path.join(cellA.dir, "probe.cjs"), PROBE_JS)
        fs.writeFileSync(path.join(cellB.dir, "note.txt"), "b's note")
        const logSecret = `log-secret-${run}`
        const other = await sh(daemon, cellB.name, `echo ${logSecret}`)
        expect(other.code).toBe(0)

        const database = path.join(daemon.stateDir, "planter.db")
        const otherLog = stdoutLog(daemon, jobIdOf(other.stderr))
        const viaProc = `/proc/${daemon.pid}`
        // Every target is really there, as the host sees it: a denial below is the sandbox, not a wrong path.
        expect(fs.readFileSync(database).subarray(0, 15).toString()).toBe("SQLite format 3")
        expect(fs.statSync(daemon.socketPath).isSocket()).toBe(true)
        expect(fs.readFileSync(otherLog, "utf8")).toContain(logSecret)
        expect(fs.readFileSync(path.join(home, "secret.txt"), "utf8")).toBe(secret)
        expect(fs.readFileSync(`${viaProc}/environ`, "utf8")).toContain(secret)
        expect(fs.existsSync(`${viaProc}/root${database}`)).toBe(true)

        const script = [
          attempt("READ", "own file (control)", "cat ./own.txt"),
          // bwrap makes the cell's mount point under an empty skeleton of the state dir: what matters is what it holds.
          `echo "state dir as the job sees it: $(ls -A ${daemon.stateDir} 2>/dev/null | tr '\\n' ' ')"`,
          attempt("READ", "state dir's logs", `ls ${daemon.stateDir}/logs`),
          attempt("READ", "database", `cat ${database}`),
          attempt("READ", "socket exists", `test -e ${daemon.socketPath}`),
          attempt("READ", "other cell's dir", `ls ${cellB.dir}`),
          attempt("READ", "other cell's file", `cat ${cellB.dir}/note.txt`),
          attempt("READ", "other job's log", `cat ${otherLog}`),
          attempt("READ", "daemon user's $HOME", `cat ${home}/secret.txt`),
          attempt("READ", "daemon's root via /proc", `cat ${viaProc}/root${database}`),
          attempt("READ", "daemon's fds via /proc", `ls ${viaProc}/fd`),
          attempt("READ", "daemon's environ via /proc", `cat ${viaProc}/environ`),
          `node ./probe.cjs "socket=unix:${daemon.socketPath}"`
        ].join("\n")
        const result = await sh(daemon, cellA.name, script)
        expect.soft(succeeded(result.stdout, "READ"), result.stderr).toEqual(["own file (control)"])
        const stateListing = fields(result.stdout)["state dir as the job sees it"] ?? ""
        expect.soft(
          stateListing.split(" ").filter((entry) => /planter|logs|sock/.test(entry)),
          "state dir entries the job sees"
        ).toEqual([])
        expect.soft(probeResults(result.stdout)["socket"], "connecting to the daemon's socket").toMatch(/^refused/)
        for (const leaked of [secret, logSecret, "b's note", "SQLite format"]) {
          expect.soft(result.stdout).not.toContain(leaked)
        }
      })
    })

    describe("4. writes outside the cell dir and TMPDIR", () => {
      it("fail, and the host sees no file", async () => {
        const cell = await createCell(daemon, "writes")
        const name = `planter-escape-${run}`
        const outside = ["/etc", "/usr", "/tmp", "/", path.dirname(cell.dir), daemon.stateDir].map((dir) =>
          path.join(dir, name)
        )
        try {
          const script = [
            ...outside.map((file) => attempt("WROTE", file, `sh -c 'echo x > ${file}'`)),
            attempt("WROTE", "cell dir (control)", `sh -c 'echo x > ./${name}'`),
            attempt("WROTE", "TMPDIR (control)", `sh -c 'echo x > "$TMPDIR/${name}"'`)
          ].join("\n")
          const result = await sh(daemon, cell.name, script)
          expect.soft(succeeded(result.stdout, "WROTE"), result.stderr).toEqual([
            "cell dir (control)",
            "TMPDIR (control)"
          ])
          expect.soft(outside.filter((file) => fs.existsSync(file)), "files the host sees").toEqual([])
          expect.soft(fs.existsSync(path.join(cell.dir, name))).toBe(true)
        } finally {
          // A sandbox that let a write through must not leave it behind on the host.
          for (const file of outside) fs.rmSync(file, { force: true })
        }
      })
    })

    describe("5. network deny", () => {
      it("a --network deny cell reaches neither a loopback TCP server nor an abstract Unix socket on the host, and a job's --network allow cannot loosen it", async () => {
        let tcpConnections = 0
        let abstractConnections = 0
        const tcp = net.createServer((socket) => {
          tcpConnections++
          socket.end()
        })
        const abstractName = `planter-test-${run}-${jobUid}`
        const abstract = net.createServer((socket) => {
          abstractConnections++
          socket.end()
        })
        await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve))
        await new Promise<void>((resolve) => abstract.listen(`\0${abstractName}`, resolve))
        try {
          const port = (tcp.address() as net.AddressInfo).port
          const targets = [`tcp=tcp:127.0.0.1:${port}`, `abstract=unix:@${abstractName}`]
          const probeOnHost = path.join(makeTempDir("planter-esc-probe-"), "probe.cjs")
          fs.writeFileSync(probeOnHost, PROBE_JS)
          const probeIn = async (cell: { name: string; dir: string }, flags: ReadonlyArray<string> = []) => {
            fs.writeFileSync(path.join(cell.dir, "probe.cjs"), PROBE_JS)
            const result = await daemon.cli([
              "run",
              cell.name,
              "--wait",
              ...flags,
              "--",
              "node",
              "./probe.cjs",
              ...targets
            ])
            return { ...result, seen: probeResults(result.stdout) }
          }

          // The probe can tell: on the host it reaches both servers.
          const host = await runNodeScript(probeOnHost, targets)
          expect(probeResults(host.stdout)).toEqual({ tcp: "connected", abstract: "connected" })

          const open = await createCell(daemon, "net-open", nodeReadArgs())
          const closed = await createCell(daemon, "net-closed", [...nodeReadArgs(), "--network", "deny"])

          const allowed = await probeIn(open)
          expect.soft(allowed.seen["tcp"], `a cell that allows network: ${allowed.stderr}`).toBe("connected")

          const denied = await probeIn(closed)
          expect.soft(denied.code, denied.stderr).toBe(0)
          expect.soft(denied.seen, "a --network deny cell").toEqual({
            tcp: expect.stringMatching(/^refused/),
            abstract: expect.stringMatching(/^refused/)
          })

          // Per-job policy can only tighten: the job either is refused or runs without network.
          const loosened = await probeIn(closed, ["--network", "allow"])
          if (loosened.code === 1 && loosened.seen["tcp"] === undefined) {
            expect.soft(loosened.stdout + loosened.stderr).toMatch(/network/i)
          } else {
            expect.soft(loosened.seen, "a --network deny cell, job started with --network allow").toEqual({
              tcp: expect.stringMatching(/^refused/),
              abstract: expect.stringMatching(/^refused/)
            })
            const record = await daemon.json(["job", "status", jobIdOf(loosened.stderr)])
            expect.soft(record.sandbox.network, "the job's recorded network policy").toBe("deny")
          }

          // Only the allowed job and the host's own probe ever arrived.
          expect.soft({ tcpConnections, abstractConnections }).toEqual({
            tcpConnections: 2,
            abstractConnections: 1 + (allowed.seen["abstract"] === "connected" ? 1 : 0)
          })
        } finally {
          tcp.close()
          abstract.close()
        }
      })
    })

    if (variant.full) {
      describe("6. create --read refuses what the sandbox hides", () => {
        it("/proc, /sys, /dev, /run, /proc/1, the state dir, paths in it, /, the socket and its dir, and symlinks to them are refused with a reason", async () => {
          const links = makeTempDir("planter-esc-links-")
          const intoState = path.join(links, "into-state")
          fs.symlinkSync(path.join(daemon.stateDir, "logs"), intoState)
          const refused = [
            "/proc",
            "/sys",
            "/dev",
            "/run",
            "/proc/1",
            // Resolves to the daemon's own /proc/<pid>: its environ, fds and root.
            "/proc/self",
            daemon.stateDir,
            path.join(daemon.stateDir, "logs"),
            path.join(daemon.stateDir, "planter.db"),
            "/",
            path.dirname(daemon.socketPath),
            intoState,
            // /var/run -> /run on most distributions: the check must follow symlinks.
            ...(fs.lstatSync("/var/run", { throwIfNoEntry: false })?.isSymbolicLink() ? ["/var/run"] : [])
          ]
          const allowed = grantedDir("planter-esc-allowed-")
          const attempts = await Promise.all([...refused, allowed].map(async (readPath, i) => {
            const result = await daemon.cli(["--json", "create", "--name", `read-${i}`, "--read", readPath])
            let message: string
            try {
              message = JSON.parse(result.stdout).error?.message ?? ""
            } catch {
              message = result.stdout + result.stderr
            }
            return { readPath, code: result.code, message }
          }))
          // The control: a plain host dir is granted.
          expect(attempts.pop()).toMatchObject({ readPath: allowed, code: 0 })
          const notRefused = attempts.filter(({ code, message, readPath }) => {
            const real = fs.realpathSync(readPath)
            const saysWhich = message.includes(readPath) || message.includes(real)
            const saysWhy =
              /expose|hidden|hide|never|not allowed|forbidden|refus|protect|private|sandbox|state dir|socket/i.test(
                message
              )
            return code !== 2 || !saysWhich || !saysWhy
          })
          // Refused as invalid_request: bad usage, exit code 2.
          expect(notRefused, "--read paths not refused with exit code 2 and a message naming the path and why").toEqual(
            []
          )
        })

        it("the socket file itself (outside the state dir) is refused: a read-only bind would still let a job connect to the daemon", async () => {
          const result = await daemon.cli([
            "--json",
            "create",
            "--name",
            "read-socket",
            ...nodeReadArgs(),
            "--read",
            daemon.socketPath
          ])
          expect.soft(result.code, `create --read ${daemon.socketPath}: ${result.stdout}`).toBe(2)
          if (result.code === 0) {
            // Accepted: show what it costs. The job reaches the daemon's socket and could drive it.
            const cell = JSON.parse(result.stdout)
            fs.writeFileSync(path.join(cell.dir, "probe.cjs"), PROBE_JS)
            const probed = await daemon.cli([
              "run",
              cell.name,
              "--wait",
              "--",
              "node",
              "./probe.cjs",
              `socket=unix:${daemon.socketPath}`
            ])
            expect.soft(probeResults(probed.stdout)["socket"], "a job of that cell connecting to the daemon's socket")
              .not.toBe("connected")
          } else {
            expect.soft(JSON.parse(result.stdout).error.message).toContain(daemon.socketPath)
          }
        })

        it("a granted path swapped for a symlink into the state dir after create does not expose it", async () => {
          const parent = grantedDir("planter-esc-swap-")
          const granted = path.join(parent, "granted")
          fs.mkdirSync(granted)
          fs.writeFileSync(path.join(granted, "data.txt"), "granted")
          const cell = await createCell(daemon, "swap", ["--read", granted])
          const before = await sh(daemon, cell.name, `ls ${granted}`)
          expect(before).toMatchObject({ code: 0, stdout: "data.txt\n" })

          // Whoever owns the granted path (any local user, for a dir in /tmp) swaps it.
          fs.rmSync(granted, { recursive: true })
          fs.symlinkSync(daemon.stateDir, granted)
          const after = await sh(daemon, cell.name, `ls ${granted}; cat ${granted}/planter.db | head -c 15`)
          expect(after.stdout, "what the job sees at the granted path").not.toMatch(/planter\.db|SQLite format/)
        })
      })

      describe("7. symlinks", () => {
        it("--cwd through a symlink to the state dir is refused; cell rm --force leaves the targets of symlinks in the cell dir and TMPDIR alone", async () => {
          const canaryDir = makeTempDir("planter-esc-canary-")
          fs.writeFileSync(path.join(canaryDir, "canary.txt"), "alive")
          const cell = await createCell(daemon, "links")

          // A job leaves symlinks behind, as any job of the cell could.
          const job = await startReadyJob(
            daemon,
            cell.name,
            `ln -s ${daemon.stateDir} ./state-link && ln -s ${canaryDir} ./canary-link && ln -s ${canaryDir}/canary.txt ./canary-file && ln -s ${canaryDir} "$TMPDIR/canary-link" && echo ready && sleep 300`,
            `links-${run}`
          )
          for (const link of ["state-link", "canary-link", "canary-file"]) {
            expect(fs.lstatSync(path.join(cell.dir, link)).isSymbolicLink()).toBe(true)
          }

          for (const cwd of ["state-link", "state-link/logs"]) {
            const result = await daemon.cli(["--json", "run", cell.name, "--cwd", cwd, "--", "ls"])
            expect.soft(result.code, `--cwd ${cwd}: ${result.stdout}`).toBe(2)
            expect.soft(JSON.parse(result.stdout).error.message).toMatch(/outside|cell dir|refus/i)
          }

          const removed = await daemon.cli(["cell", "rm", cell.name, "--force"])
          expect(removed.code, removed.stdout + removed.stderr).toBe(0)
          expect(fs.existsSync(cell.dir), "the cell dir is gone").toBe(false)
          expect(pidAlive(job.pid)).toBe(false)
          expect(fs.readdirSync(canaryDir)).toEqual(["canary.txt"])
          expect(fs.readFileSync(path.join(canaryDir, "canary.txt"), "utf8")).toBe("alive")
          expect(fs.existsSync(path.join(daemon.stateDir, "logs")), "the state dir the link pointed at").toBe(true)
        })
      })

      describe("8. kill", () => {
        it("descendants that setsid, double-fork or ignore SIGTERM are all gone after job kill", async () => {
          const cell = await createCell(daemon, "escapees")
          const marker = `escapee-${run}`
          fs.writeFileSync(
            path.join(cell.dir, "attack.sh"),
            [
              `M="$1"`,
              `setsid sh -c 'while :; do sleep 1; done' "$M-setsid" &`,
              // Double fork: the middle shell exits at once, its child is orphaned.
              `sh -c 'sh -c "while :; do sleep 1; done" "$0-orphan" & exit 0' "$M" &`,
              // A daemon: its own session, double-forked, deaf to SIGTERM.
              `setsid sh -c 'sh -c "trap \\"\\" TERM; while :; do sleep 1; done" "$0-daemonized" & exit 0' "$M" &`,
              `sh -c 'trap "" TERM; while :; do sleep 1; done' "$M-noterm" &`,
              `echo ready`,
              `wait`
            ].join("\n") + "\n"
          )
          const job = await daemon.json(["run", cell.name, "--", "sh", "./attack.sh", marker])
          remember(job.pid)
          const escapees = ["setsid", "orphan", "daemonized", "noterm"].map((kind) => `${marker}-${kind}`)
          await waitFor(
            "every escapee to run",
            () => {
              const running = markedProcesses(marker).map((entry) => entry.cmdline)
              return escapees.every((name) => running.some((cmdline) => cmdline.endsWith(name)))
            },
            20_000
          )

          const killed = await daemon.json(["job", "kill", job.id])
          expect(killed).toMatchObject({ status: "exited", termination_reason: "terminated_by_user" })
          expect(markedProcesses(marker), "processes of the job alive after job kill").toEqual([])
        })
      })
    }

    // Last: the final case stops this variant's daemon.
    describe("9. grace under bubblewrap", () => {
      const trapScript =
        `trap "echo got TERM; sleep 1; echo cleaned; exit 0" TERM; echo ready; while :; do sleep 1; done`

      it("a job that traps SIGTERM gets its grace on job kill: it cleans up and exits 0", async () => {
        const cell = await createCell(daemon, "grace")
        const marker = `trap-${run}-${jobUid}`
        const job = await startReadyJob(daemon, cell.name, trapScript, marker)
        const killed = await daemon.json(["job", "kill", job.id])
        const output = readIfExists(stdoutLog(daemon, job.id))
        expect.soft(output, "the job's stdout").toContain("got TERM")
        expect.soft(output, "the job's stdout").toContain("cleaned")
        expect.soft(killed, "the job's record").toMatchObject({
          status: "exited",
          exit_code: 0,
          termination_reason: "terminated_by_user"
        })
        expect.soft(markedProcesses(marker), "processes of the job alive after job kill").toEqual([])
      })

      it("a job that ignores SIGTERM still dies at the end of the grace", async () => {
        const cell = await createCell(daemon, "deaf")
        const marker = `deaf-${run}-${jobUid}`
        const job = await startReadyJob(
          daemon,
          cell.name,
          `trap "" TERM; echo ready; while :; do sleep 1; done`,
          marker
        )
        const began = Date.now()
        const killed = await daemon.json(["job", "kill", job.id])
        const took = Date.now() - began
        expect(killed).toMatchObject({ status: "exited", termination_reason: "terminated_by_user" })
        expect(markedProcesses(marker), "processes of the job alive after job kill").toEqual([])
        expect(took, "job kill of a job deaf to SIGTERM (ms)").toBeLessThan(GRACE_MS + 15_000)
      })

      it("daemon shutdown (SIGTERM to planterd) gives a trapping job the same grace", async () => {
        const cell = await createCell(daemon, "shutdown-grace")
        const marker = `shutdown-${run}-${jobUid}`
        const job = await startReadyJob(daemon, cell.name, trapScript, marker)
        expect(await daemon.stop("SIGTERM")).toBe(0)
        const output = readIfExists(stdoutLog(daemon, job.id))
        expect.soft(output, "the job's stdout").toContain("got TERM")
        expect.soft(output, "the job's stdout").toContain("cleaned")
        expect.soft(markedProcesses(marker), "processes of the job alive after the daemon stopped").toEqual([])
      })
    })
  })
}

// ---------------------------------------------------------------------------
// State files: no sandbox needed, so these run with or without bubblewrap.

describe("10. state files are private", { timeout: SLOW }, () => {
  const modeOf = (file: string) => {
    try {
      return (fs.statSync(file).mode & 0o777).toString(8).padStart(4, "0")
    } catch {
      return "missing"
    }
  }

  it("the state dir is 0700 and planter.db, -wal, -shm, logs and the socket 0600, under umask 022", async () => {
    const stateDir = path.join(makeTempDir("planter-esc-umask-"), "state")
    const daemon = await startDaemon({ stateDir, umask: 0o022 })
    try {
      const cell = await createCell(daemon, "umask")
      const result = await sh(daemon, cell.name, "echo hi")
      expect(result.code).toBe(0)
      const jobId = jobIdOf(result.stderr)
      const files = {
        [stateDir]: "0700",
        [path.join(stateDir, "cells")]: "0700",
        [path.join(stateDir, "logs")]: "0700",
        [path.join(stateDir, "tmp")]: "0700",
        [cell.dir]: "0700",
        [path.join(stateDir, "planter.db")]: "0600",
        [path.join(stateDir, "planter.db-wal")]: "0600",
        [path.join(stateDir, "planter.db-shm")]: "0600",
        [stdoutLog(daemon, jobId)]: "0600",
        [daemon.socketPath]: "0600"
      }
      expect(Object.fromEntries(Object.keys(files).map((file) => [file, modeOf(file)]))).toEqual(files)
    } finally {
      await daemon.stop()
    }
  })

  it("a group- or world-writable state dir is refused at start with a one-line message naming it", async () => {
    const problems: Array<string> = []
    for (const mode of [0o777, 0o770]) {
      const stateDir = makeTempDir("planter-esc-open-")
      fs.chmodSync(stateDir, mode)
      const started = await startDaemonExpectingRefusal({ stateDir })
      const lines = started.output.trim().split("\n")
      const naming = lines.filter((line) =>
        line.includes(stateDir) && /writable|permission|mode|insecure|unsafe/i.test(line)
      )
      const problem = started.code === "answered"
        ? "planterd started and answered"
        : started.code === 0
        ? "planterd exited 0"
        : naming.length === 0
        ? "no line names the state dir and what is wrong with it"
        : lines.some((line) => /^\s+at /.test(line))
        ? "the message comes with a stack trace"
        : undefined
      if (problem !== undefined) {
        problems.push(`state dir mode ${mode.toString(8)}: ${problem}; planterd said:\n${started.output}`)
      }
    }
    expect(problems).toEqual([])
  })
})
