import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { daemonAnswers } from "../rpc/SocketProbe.js"
import type { AuthzPolicy, SocketAccess } from "../services/Authz.js"
import { socketAccess } from "../services/Authz.js"

/** planterd cannot take its socket path, or its setup is insecure; the message says what to do. */
export class SocketPathError extends Schema.TaggedError<SocketPathError>()("SocketPathError", {
  message: Schema.String
}) {}

const modeOf = (mode: number) => `0${(mode & 0o7777).toString(8)}`

const daemonUid = () => process.getuid?.() ?? 0

/** What the socket's directory is: ours and private, or a shared sticky dir such as /tmp. */
export type SocketDir = { readonly kind: "own" } | { readonly kind: "sticky" }

const isInside = (child: string, parent: string) => {
  const relative = path.relative(parent, child)
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative))
}

/**
 * Whom the socket must be reachable by: every directory above it must let
 * them search it (x), or they cannot connect whatever the socket's mode.
 */
const unreachableBy = (dir: string, access: SocketAccess): string | undefined => {
  if (access.kind === "private") return undefined
  for (let current = dir;; current = path.dirname(current)) {
    const stat = fs.statSync(current)
    const searchable = (stat.mode & 0o001) !== 0 ||
      (access.kind === "group" && stat.gid === access.gid && (stat.mode & 0o010) !== 0)
    if (!searchable) {
      const fix = access.kind === "group"
        ? `\`chgrp ${access.label} ${current} && chmod g+x ${current}\` (or \`chmod o+x ${current}\`)`
        : `\`chmod o+x ${current}\``
      return `the socket's directory ${current} cannot be searched by the users the policy allows (mode ${
        modeOf(stat.mode)
      }), so they could not connect: ${fix}`
    }
    if (current === path.dirname(current)) return undefined
  }
}

/**
 * Startup checks on the socket's directory, before anything listens:
 * - it is created if missing (0700, or 0711 when others are allowed: they
 *   may traverse it, not list it);
 * - it must be owned by the daemon's user and not writable by its group or
 *   others, unless it is a sticky dir such as /tmp (others cannot remove or
 *   replace our socket there; the socket itself is then checked);
 * - with `--strict` it must be private: ours, no sticky shared dir, no
 *   access for group or others;
 * - when others are allowed, the socket must live outside the state dir
 *   (which stays 0700) and every directory above it must be searchable by them.
 * Each refusal is one line saying what is wrong and the command that fixes it.
 */
export const checkSocketDir = Effect.fn("SocketGuard.checkSocketDir")(function*(
  socketPath: string,
  policy: AuthzPolicy,
  stateDir: string
) {
  const access = socketAccess(policy)
  const dir = path.dirname(socketPath)
  const uid = daemonUid()
  if (access.kind !== "private" && isInside(dir, path.resolve(stateDir))) {
    return yield* new SocketPathError({
      message: `the policy lets other users connect (${
        access.kind === "group" ? `group ${access.label}` : "other uids or several groups"
      }), but the socket ${socketPath} is inside the state dir ${stateDir}, which stays private (0700): give it a directory of its own they can reach, e.g. \`mkdir -m 755 /run/planter && planterd --socket /run/planter/planterd.sock …\``
    })
  }
  yield* Effect.try({
    try: () => {
      if (!fs.existsSync(dir)) {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
        fs.chmodSync(dir, access.kind === "private" ? 0o700 : 0o711)
      }
    },
    catch: (error) =>
      new SocketPathError({ message: `cannot create the socket's directory ${dir}: ${(error as Error).message}` })
  })
  const stat = fs.statSync(dir)
  const sticky = (stat.mode & 0o1000) !== 0
  if (policy.strict) {
    if (stat.uid !== uid || sticky || (stat.mode & 0o077) !== 0) {
      return yield* new SocketPathError({
        message: `--strict needs a private socket directory, and ${dir} is ${
          stat.uid !== uid
            ? `owned by uid ${stat.uid}`
            : sticky
            ? "a shared sticky directory"
            : `open to others (mode ${modeOf(stat.mode)})`
        }: use a directory of the daemon's user with \`chmod 700 ${dir}\`${
          stat.uid !== uid || sticky ? ` (e.g. --socket ${path.join(stateDir, "planterd.sock")})` : ""
        }`
      })
    }
  } else if (!sticky) {
    if (stat.uid !== uid) {
      return yield* new SocketPathError({
        message:
          `the socket's directory ${dir} is owned by uid ${stat.uid}, not by the daemon's user (uid ${uid}), who could replace the socket: \`chown ${uid} ${dir}\`, or choose another --socket`
      })
    }
    if ((stat.mode & 0o022) !== 0) {
      return yield* new SocketPathError({
        message: `the socket's directory ${dir} is writable by ${
          (stat.mode & 0o002) !== 0 ? "every user" : "its group"
        } (mode ${modeOf(stat.mode)}), who could replace the socket: \`chmod go-w ${dir}\``
      })
    }
  }
  const unreachable = unreachableBy(dir, access)
  if (unreachable !== undefined) return yield* new SocketPathError({ message: unreachable })
  return sticky && !policy.strict ? { kind: "sticky" } as SocketDir : { kind: "own" } as SocketDir
})

/**
 * Prepares the socket path before listening: a stale socket left by a
 * crashed daemon is replaced, but a live daemon, a file that is not a
 * socket, or (in a sticky dir) another user's socket is never touched.
 */
export const claimSocketPath = Effect.fn("SocketGuard.claimSocketPath")(function*(socketPath: string, dir: SocketDir) {
  let stat: fs.Stats
  try {
    stat = fs.lstatSync(socketPath)
  } catch {
    return
  }
  if (!stat.isSocket()) {
    return yield* new SocketPathError({
      message: `${socketPath} exists and is not a socket: move it away or start planterd with --socket PATH`
    })
  }
  if (dir.kind === "sticky" && stat.uid !== daemonUid()) {
    return yield* new SocketPathError({
      message: `${socketPath} is another user's socket (uid ${stat.uid}) in a shared directory: choose another --socket`
    })
  }
  if (yield* daemonAnswers(socketPath)) {
    return yield* new SocketPathError({
      message:
        `a daemon is already listening on ${socketPath}: stop it first, or give this one a socket and a state dir of its own (--socket PATH --state-dir DIR)`
    })
  }
  yield* Effect.logInfo(`replacing stale socket ${socketPath}`)
  yield* Effect.sync(() => fs.rmSync(socketPath, { force: true }))
})

/**
 * Runs `listen` with a umask that creates the socket 0600: nobody else can
 * connect before its mode is set. (Connections are gated by peer
 * credentials in any case; this keeps the file private from its first instant.)
 */
export const withPrivateUmask = <A, E, R>(listen: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => process.umask(0o177)),
    () => listen,
    (previous) => Effect.sync(() => process.umask(previous))
  )

/**
 * After listening: the socket gets the mode (and group) the policy needs —
 * 0600; 0660 owned by the allowed group; 0666 when several groups or other
 * uids are allowed, the peer-credential check being the gate — and both are
 * verified. On close the socket file is removed, if it is still ours.
 */
export const secureAndRemoveOnClose = Effect.fn("SocketGuard.secureAndRemoveOnClose")(function*(
  socketPath: string,
  policy: AuthzPolicy
) {
  const access = socketAccess(policy)
  const inode = yield* Effect.try({
    try: () => {
      if (access.kind === "group") fs.chownSync(socketPath, -1, access.gid)
      fs.chmodSync(socketPath, access.mode)
      return fs.statSync(socketPath).ino
    },
    catch: (error) =>
      new SocketPathError({
        message: access.kind === "group" && (error as NodeJS.ErrnoException).code === "EPERM"
          ? `cannot give the socket to group ${access.label}: the daemon's user must be a member of it (\`usermod -aG ${access.label} $(id -un)\`, then log in again)`
          : `cannot set the socket's mode: ${(error as Error).message}`
      })
  })
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      try {
        if (fs.statSync(socketPath).ino === inode) fs.rmSync(socketPath)
      } catch {
        // Already gone.
      }
    })
  )
  const stat = fs.lstatSync(socketPath)
  const wrong = !stat.isSocket()
    ? "is not a socket"
    : stat.uid !== daemonUid()
    ? `is owned by uid ${stat.uid}`
    : (stat.mode & 0o777) !== access.mode
    ? `has mode ${modeOf(stat.mode)}, not ${modeOf(access.mode)}`
    : access.kind === "group" && stat.gid !== access.gid
    ? `belongs to gid ${stat.gid}, not ${access.gid}`
    : undefined
  if (wrong !== undefined) {
    return yield* new SocketPathError({
      message:
        `the socket ${socketPath} ${wrong} after it was created: something else changed it; check who can write ${
          path.dirname(socketPath)
        }`
    })
  }
})
