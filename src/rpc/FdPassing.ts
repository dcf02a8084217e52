/**
 * Passing an open file descriptor between processes over a Unix socket
 * (`sendmsg`/`recvmsg` with `SCM_RIGHTS`), through the koffi FFI binding.
 *
 * Used for log transfer: the daemon opens a job's log read-only and hands
 * the descriptor to an authorized client, which then reads the file at disk
 * speed itself. Linux only (x86_64 and arm64 layouts below); elsewhere
 * `available()` is false and callers use the chunked LogsRead instead.
 *
 * Both sides run on sockets no one else reads from: the daemon's own
 * outgoing connection, and the client's accepted connection created with
 * `pauseOnConnect` (libuv never reads it, so the message and its
 * descriptor stay for recvmsg).
 */
import type * as net from "node:net"

/** The bytes that travel with the descriptor: the token the receiver chose, so it can tell the daemon's message from anyone's. */
export const TOKEN_BYTES = 16

interface Native {
  readonly sendFd: (socketFd: number, fd: number, token: Uint8Array) => void
  /** Null when nothing is there yet (EAGAIN). */
  readonly recvFd: (socketFd: number) => { readonly fd: number | null; readonly token: Uint8Array } | null
}

let native: Native | null | undefined

// struct msghdr (64-bit Linux): name, namelen(+pad), iov, iovlen, control, controllen, flags(+pad).
const MSGHDR_SIZE = 56
const IOVEC_SIZE = 16
// struct cmsghdr: cmsg_len (size_t), cmsg_level (int), cmsg_type (int), then data (CMSG_ALIGN'd to 8).
const CMSG_HEADER = 16
const CMSG_SPACE_ONE_FD = 24
const CMSG_LEN_ONE_FD = 20
const SOL_SOCKET = 1
const SCM_RIGHTS = 1
const MSG_CMSG_CLOEXEC = 0x40000000
const MSG_NOSIGNAL = 0x4000
const EAGAIN = 11

const load = async (): Promise<Native | null> => {
  if (native !== undefined) return native
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    native = null
    return native
  }
  try {
    const koffi = (await import("koffi")).default
    const libc = koffi.load("libc.so.6")
    const sendmsg = libc.func("long sendmsg(int fd, void *msg, int flags)")
    const recvmsg = libc.func("long recvmsg(int fd, void *msg, int flags)")

    /** One unmanaged block holding msghdr, iovec, the token and the control message. */
    const message = () => {
      const size = MSGHDR_SIZE + IOVEC_SIZE + TOKEN_BYTES + CMSG_SPACE_ONE_FD
      const block = koffi.alloc("uint8_t", size)
      const base = koffi.address(block)
      const view = new DataView(koffi.view(block, size))
      for (let i = 0; i < size; i++) view.setUint8(i, 0)
      const iov = MSGHDR_SIZE
      const data = iov + IOVEC_SIZE
      const control = data + TOKEN_BYTES
      view.setBigUint64(16, base + BigInt(iov), true) // msg_iov
      view.setBigUint64(24, 1n, true) // msg_iovlen
      view.setBigUint64(32, base + BigInt(control), true) // msg_control
      view.setBigUint64(40, BigInt(CMSG_SPACE_ONE_FD), true) // msg_controllen
      view.setBigUint64(iov, base + BigInt(data), true) // iov_base
      view.setBigUint64(iov + 8, BigInt(TOKEN_BYTES), true) // iov_len
      return { block, view, data, control }
    }

    native = {
      sendFd: (socketFd, fd, token) => {
        const { block, control, data, view } = message()
        try {
          if (token.length !== TOKEN_BYTES) throw new Error(`the token must be ${TOKEN_BYTES} bytes`)
          for (let i = 0; i < TOKEN_BYTES; i++) view.setUint8(data + i, token[i]!)
          view.setBigUint64(control, BigInt(CMSG_LEN_ONE_FD), true)
          view.setInt32(control + 8, SOL_SOCKET, true)
          view.setInt32(control + 12, SCM_RIGHTS, true)
          view.setInt32(control + CMSG_HEADER, fd, true)
          if (Number(sendmsg(socketFd, block, MSG_NOSIGNAL)) !== TOKEN_BYTES) {
            throw new Error(`sendmsg failed: errno ${koffi.errno()}`)
          }
        } finally {
          koffi.free(block)
        }
      },
      recvFd: (socketFd) => {
        const { block, control, data, view } = message()
        try {
          const received = Number(recvmsg(socketFd, block, MSG_CMSG_CLOEXEC))
          if (received < 0 && koffi.errno() === EAGAIN) return null
          if (received < 0) throw new Error(`recvmsg failed: errno ${koffi.errno()}`)
          const token = new Uint8Array(TOKEN_BYTES)
          for (let i = 0; i < Math.min(received, TOKEN_BYTES); i++) token[i] = view.getUint8(data + i)
          const controllen = Number(view.getBigUint64(40, true))
          const hasFd = controllen >= CMSG_LEN_ONE_FD && view.getInt32(control + 8, true) === SOL_SOCKET &&
            view.getInt32(control + 12, true) === SCM_RIGHTS
          return {
            fd: hasFd ? view.getInt32(control + CMSG_HEADER, true) : null,
            token: received === TOKEN_BYTES ? token : new Uint8Array(0)
          }
        } finally {
          koffi.free(block)
        }
      }
    }
  } catch {
    native = null
  }
  return native
}

/** Whether descriptors can be passed here (loads the binding on first call). */
export const available = async (): Promise<boolean> => (await load()) !== null

const socketFd = (socket: net.Socket): number => {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd
  if (typeof fd !== "number" || fd < 0) throw new Error("the connection has no file descriptor")
  return fd
}

/** Sends `fd`, with `token` as the message's bytes, on a connected Unix socket nobody else writes to. */
export const sendFd = async (socket: net.Socket, fd: number, token: Uint8Array): Promise<void> => {
  const binding = await load()
  if (binding === null) throw new Error(`descriptor passing is not supported on ${process.platform}/${process.arch}`)
  binding.sendFd(socketFd(socket), fd, token)
}

/**
 * Receives one message and its descriptor (close-on-exec) from a connected
 * Unix socket libuv does not read (accepted paused); null when nothing has
 * arrived. A descriptor received without the expected token must be closed
 * by the caller.
 */
export const recvFd = async (socket: net.Socket) => {
  const binding = await load()
  if (binding === null) throw new Error(`descriptor passing is not supported on ${process.platform}/${process.arch}`)
  return binding.recvFd(socketFd(socket))
}
