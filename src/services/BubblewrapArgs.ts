import type { SandboxRequest } from "./SandboxRunner.js"
import { STATUS_FD } from "./SandboxRunner.js"

/** A system directory: bound read-only, or recreated as a symlink where the host has one (merged /usr). */
export interface SystemPath {
  readonly path: string
  readonly symlinkTarget: string | null
}

/** The executable and runtime directories every job may read on Linux. */
export const LINUX_SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"]

/**
 * The whole environment bwrap itself starts with. It runs outside the
 * sandbox, so nothing the job supplies (LD_PRELOAD, LD_LIBRARY_PATH,
 * GCONV_PATH, …) may reach it: the job's own variables are set inside with
 * `--clearenv` and `--setenv`, after the sandbox is in force.
 */
export const LAUNCHER_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C.UTF-8"
}

/** The system directories as bubblewrap arguments: read-only binds, or symlinks where the host has them. */
export const systemPathArgs = (systemPaths: ReadonlyArray<SystemPath>): Array<string> =>
  systemPaths.flatMap(({ path, symlinkTarget }) =>
    symlinkTarget !== null ? ["--symlink", symlinkTarget, path] : ["--ro-bind", path, path]
  )

/** What this host's bubblewrap supports beyond the basics, found by the start-up probe. */
export interface BubblewrapFeatures {
  /** `--disable-userns` (bubblewrap ≥ 0.8): the job cannot create a user namespace of its own. */
  readonly disableUserns: boolean
}

/**
 * Privilege: a user namespace in which the job keeps the daemon's uid (so
 * `id -u` inside is the daemon's uid, and files it writes in its cell are
 * the daemon user's on the host) with every capability dropped, including
 * the bounding set, so not even a root daemon's job can mount, create
 * devices or regain capabilities by exec; bubblewrap also sets
 * no_new_privs, so setuid binaries grant nothing.
 */
export const privilegeArgs = (features: BubblewrapFeatures): Array<string> => [
  "--unshare-user",
  ...(features.disableUserns ? ["--disable-userns"] : []),
  "--cap-drop",
  "ALL"
]

/**
 * The bubblewrap command line for one job. The job sees the system
 * directories read-only, its cell and private temp dir read-write, the cell's
 * granted paths read-only, and nothing else: the state dir (database, other
 * cells, logs, the daemon's socket) is simply never mounted, and the root is
 * read-only, so writing anywhere else fails instead of landing in a tmpfs.
 * It runs in its own PID namespace so killing the tree cannot miss an
 * escaped descendant. Nothing ties it to the daemon (no `--die-with-parent`):
 * a job outlives a daemon crash and the next daemon adopts it, learning its
 * exit from the status bwrap writes to `STATUS_FD`.
 */
export const bubblewrapArgs = (
  request: SandboxRequest,
  systemPaths: ReadonlyArray<SystemPath>,
  features: BubblewrapFeatures = { disableUserns: false }
): Array<string> => {
  const args = [...privilegeArgs(features), "--unshare-pid", "--new-session", "--json-status-fd", String(STATUS_FD)]
  if (request.network === "deny") args.push("--unshare-net")
  args.push(...systemPathArgs(systemPaths))
  args.push("--proc", "/proc", "--dev", "/dev")
  for (const path of request.readPaths) args.push("--ro-bind", path, path)
  args.push("--bind", request.cellDir, request.cellDir)
  args.push("--bind", request.tmpDir, request.tmpDir)
  // bwrap's root is a writable tmpfs: without this a write to a hidden path
  // (the state dir, $HOME) would "succeed" into it and vanish. The binds
  // above are mounts of their own and stay as they are.
  args.push("--remount-ro", "/")
  args.push("--chdir", request.cwd)
  args.push("--clearenv")
  for (const [name, value] of Object.entries(request.env)) args.push("--setenv", name, value)
  args.push("--", ...request.argv)
  return args
}
