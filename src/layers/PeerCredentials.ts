import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import type * as net from "node:net"

/**
 * Who is at the other end of an accepted Unix socket connection, as the
 * kernel says: read from the connection's fd (Linux `SO_PEERCRED`, macOS
 * `getpeereid` + `LOCAL_PEERPID`), never from anything the client sends.
 * `groups` holds the peer's primary gid and its supplementary groups.
 */
export interface PeerCredentials {
  readonly uid: number
  readonly gid: number
  /** The peer's pid at connect time; null where the OS does not tell (never on Linux). */
  readonly pid: number | null
  readonly groups: ReadonlyArray<number>
}

/** The credentials of a connection could not be read: the connection is closed unanswered. */
export class PeerCredentialsError extends Schema.TaggedError<PeerCredentialsError>()("PeerCredentialsError", {
  message: Schema.String
}) {}

interface Native {
  readonly read: (fd: number) => { uid: number; gid: number; pid: number | null }
}

/** The FFI binding, loaded once on first use; koffi ships prebuilt binaries (no compile step). */
let native: Native | undefined

const loadNative = async (): Promise<Native> => {
  if (native !== undefined) return native
  const koffi = (await import("koffi")).default
  if (process.platform === "linux") {
    const libc = koffi.load("libc.so.6")
    const ucred = koffi.struct("planter_ucred", { pid: "int32", uid: "uint32", gid: "uint32" })
    const getsockopt = libc.func(
      "int getsockopt(int fd, int level, int name, _Out_ planter_ucred *value, _Inout_ uint32 *length)"
    )
    const SOL_SOCKET = 1
    const SO_PEERCRED = 17
    native = {
      read: (fd) => {
        const value = { pid: 0, uid: 0, gid: 0 }
        const length = [koffi.sizeof(ucred)]
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) !== 0) {
          throw new Error(`getsockopt(SO_PEERCRED) failed: errno ${koffi.errno()}`)
        }
        return { uid: value.uid, gid: value.gid, pid: value.pid > 0 ? value.pid : null }
      }
    }
  } else if (process.platform === "darwin") {
    const libc = koffi.load("libSystem.B.dylib")
    const getpeereid = libc.func("int getpeereid(int fd, _Out_ uint32 *uid, _Out_ uint32 *gid)")
    const getsockopt = libc.func(
      "int getsockopt(int fd, int level, int name, _Out_ int32 *value, _Inout_ uint32 *length)"
    )
    const SOL_LOCAL = 0
    const LOCAL_PEERPID = 2
    native = {
      read: (fd) => {
        const uid = [0]
        const gid = [0]
        if (getpeereid(fd, uid, gid) !== 0) throw new Error(`getpeereid failed: errno ${koffi.errno()}`)
        const pid = [0]
        const pidOk = getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, pid, [4]) === 0
        return { uid: uid[0]!, gid: gid[0]!, pid: pidOk && pid[0]! > 0 ? pid[0]! : null }
      }
    }
  } else {
    throw new Error(`peer credentials are not supported on ${process.platform}`)
  }
  return native
}

/**
 * The peer's supplementary groups. Linux: the `Groups:` line of
 * /proc/<pid>/status, read at accept time and trusted only if that
 * process still has the peer's uid (a pid reused by another user's process
 * gives nothing). Elsewhere, or when that read fails: none beyond the primary gid.
 */
export const supplementaryGroups = (pid: number | null, uid: number): ReadonlyArray<number> => {
  if (pid === null || process.platform !== "linux") return []
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status)
    if (uids === null || Number(uids[1]) !== uid && Number(uids[2]) !== uid) return []
    const groups = /^Groups:[ \t]*(.*)$/m.exec(status)
    if (groups === null) return []
    return groups[1]!.trim().split(/\s+/).filter((word) => /^\d+$/.test(word)).map(Number)
  } catch {
    return []
  }
}

/** Loads the native binding; fails at start-up, not at the first connection, if it cannot. */
export const ensureLoaded = Effect.tryPromise({
  try: () => loadNative(),
  catch: (error) =>
    new PeerCredentialsError({
      message: `cannot load the peer-credentials binding (koffi): ${
        error instanceof Error ? error.message : String(error)
      }`
    })
}).pipe(Effect.asVoid)

/** Reads the credentials of an accepted connection from its fd. */
export const read = (socket: net.Socket): Effect.Effect<PeerCredentials, PeerCredentialsError> =>
  Effect.flatMap(Effect.promise(() => loadNative().catch(() => undefined)), (binding) =>
    Effect.try({
      try: () => {
        if (binding === undefined) throw new Error("the koffi binding is not loaded")
        const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd
        if (typeof fd !== "number" || fd < 0) throw new Error("the connection has no file descriptor")
        const { gid, pid, uid } = binding.read(fd)
        const groups = [...new Set([gid, ...supplementaryGroups(pid, uid)])]
        return { uid, gid, pid, groups }
      },
      catch: (error) =>
        new PeerCredentialsError({
          message: `cannot read the peer's credentials: ${error instanceof Error ? error.message : String(error)}`
        })
    }))
