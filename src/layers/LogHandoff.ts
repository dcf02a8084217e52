import { Effect } from "effect"
import * as net from "node:net"
import * as FdPassing from "../rpc/FdPassing.js"
import type { CallerShape } from "../rpc/Middleware.js"
import { InvalidInput } from "../services/DomainErrors.js"
import * as PeerCredentials from "./PeerCredentials.js"

/** How long the caller's reply socket may take to accept. It is the caller's own, listening before it asked. */
const CONNECT_TIMEOUT_MS = 2_000

const connect = (name: string) =>
  Effect.async<net.Socket, InvalidInput>((resume) => {
    const socket = net.connect({ path: `\0${name}` })
    const fail = (message: string) => {
      socket.destroy()
      resume(Effect.fail(new InvalidInput({ message })))
    }
    const timer = setTimeout(
      () => fail(`the reply socket @${name} did not accept within ${CONNECT_TIMEOUT_MS} ms`),
      CONNECT_TIMEOUT_MS
    )
    socket.once("connect", () => {
      clearTimeout(timer)
      // From here on an error is the hand-over's to report (sendmsg fails); a late socket error must never be unhandled.
      socket.removeAllListeners("error")
      socket.on("error", () => {})
      resume(Effect.succeed(socket))
    })
    socket.once("error", (error) => {
      clearTimeout(timer)
      fail(`cannot connect to the reply socket @${name}: ${error.message}`)
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

/**
 * Sends `fd` to the caller through the abstract Unix socket it named. The
 * daemon connects there, and sends nothing unless the kernel says the
 * listener is the very process that made the request (its pid and uid, as
 * read from both sockets): a caller cannot make the daemon hand a
 * descriptor to, or even write a byte to, anyone else's socket.
 */
export const handOver = (replyTo: string, token: string, caller: CallerShape, fd: number) =>
  Effect.acquireUseRelease(
    connect(replyTo),
    (socket) =>
      Effect.gen(function*() {
        const listener = yield* PeerCredentials.read(socket).pipe(
          Effect.mapError((error) => new InvalidInput({ message: error.message }))
        )
        if (caller.pid === null || listener.pid !== caller.pid || listener.uid !== caller.uid) {
          return yield* new InvalidInput({
            message: `the reply socket @${replyTo} belongs to pid ${
              listener.pid ?? "?"
            } (uid ${listener.uid}), not to the caller (pid ${caller.pid ?? "?"}, uid ${caller.uid}): nothing was sent`
          })
        }
        yield* Effect.tryPromise({
          try: () => FdPassing.sendFd(socket, fd, Buffer.from(token, "hex")),
          catch: (error) =>
            new InvalidInput({
              message: `cannot send the log's descriptor: ${error instanceof Error ? error.message : String(error)}`
            })
        })
      }),
    (socket) => Effect.sync(() => socket.destroy())
  )
