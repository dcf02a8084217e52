import type { SandboxRequest } from "./SandboxRunner.js"

/** A system directory: bound read-only, or recreated as a symlink where the host has one (merged /usr). */
export interface SystemPath {
  readonly path: string
  readonly symlinkTarget: string | null
}

/** The executable and runtime directories every job may read on Linux. */
export const LINUX_SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"]

/** The system directories as bubblewrap arguments: read-only binds, or symlinks where the host has them. */
export const systemPathArgs = (systemPaths: ReadonlyArray<SystemPath>): Array<string> =>
  systemPaths.flatMap(({ path, symlinkTarget }) =>
    symlinkTarget !== null ? ["--symlink", symlinkTarget, path] : ["--ro-bind", path, path]
  )

/**
 * The bubblewrap command line for one job. The job sees the system
 * directories read-only, its cell and private temp dir read-write, the cell's
 * granted paths read-only, and nothing else: the state dir (database, other
 * cells, logs, the daemon's socket) is simply never mounted, and the root is
 * read-only, so writing anywhere else fails instead of landing in a tmpfs.
 * It runs in its own PID namespace so killing the tree cannot miss an
 * escaped descendant, and `--die-with-parent` ties the namespace to the bwrap
 * we supervise.
 */
export const bubblewrapArgs = (
  request: SandboxRequest,
  systemPaths: ReadonlyArray<SystemPath>
): Array<string> => {
  const args = ["--die-with-parent", "--unshare-pid", "--new-session"]
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
  args.push("--", ...request.argv)
  return args
}
