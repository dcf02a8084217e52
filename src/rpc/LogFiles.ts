/**
 * Fast bulk reads of a job's log: the daemon hands the client an open,
 * read-only descriptor of the file (LogsOpen, over an abstract Unix socket
 * the client listens on for just that message), and the client reads the
 * file itself at disk speed. No bytes go through msgpack or the RPC
 * connection. Linux only; elsewhere, or when the hand-over is impossible
 * (another network namespace), `openLogFile` answers null and LogsRead
 * serves the bytes in chunks.
 */
import type * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import type * as RpcGroup from "@effect/rpc/RpcGroup"
import { Deferred, Effect } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as FdPassing from "./FdPassing.js"
import type { LogStream } from "./Models.js"
import type { PlanterRpcs } from "./Rpcs.js"

type Client = RpcClient.RpcClient<RpcGroup.Rpcs<typeof PlanterRpcs>, RpcClientError>

export interface OpenLogFile {
  /** A read-only descriptor of the log, closed with the scope; null when the job has written nothing to it yet. */
  readonly fd: number | null
  /** Its size when the daemon opened it. */
  readonly size: number
  /** The job had finished by then: the file will not grow. */
  readonly complete: boolean
}

/** How long the daemon's connection may take to be accepted after it answered (it connects before answering). */
const ACCEPT_TIMEOUT_MS = 2_000

const listen = (name: string) =>
  Effect.acquireRelease(
    Effect.async<{ server: net.Server; connections: Array<net.Socket>; arrived: Deferred.Deferred<void> }, Error>(
      (resume) => {
        const connections: Array<net.Socket> = []
        const arrived = Deferred.unsafeMake<void>(undefined as never)
        // Paused: libuv never reads these connections, so the message and its descriptor wait for recvmsg.
        const server = net.createServer({ pauseOnConnect: true }, (connection) => {
          connection.on("error", () => {}) // Never read or written by libuv; an error on it must not crash the client.
          connections.push(connection)
          Deferred.unsafeDone(arrived, Effect.void)
        })
        server.once("error", (error) => resume(Effect.fail(error)))
        server.listen({ path: `\0${name}` }, () => {
          server.removeAllListeners("error")
          server.on("error", () => {})
          resume(Effect.succeed({ server, connections, arrived }))
        })
      }
    ),
    ({ connections, server }) =>
      Effect.sync(() => {
        for (const connection of connections) connection.destroy()
        server.close()
      })
  )

/**
 * Asks the daemon for the log's descriptor. Null when this platform cannot
 * receive one; fails with LogsOpen's errors (e.g. `not_found`,
 * `unauthorized`, or `invalid_request` when the daemon cannot reach the
 * reply socket).
 */
export const openLogFile = (client: Client, request: { readonly job_id: string; readonly stream: LogStream }) =>
  Effect.gen(function*() {
    // PLANTER_LOGS_VIA_RPC=1: always read in LogsRead chunks (a way round a host where the hand-over misbehaves).
    if (process.env.PLANTER_LOGS_VIA_RPC === "1" || !(yield* Effect.promise(FdPassing.available))) return null
    const opened = yield* Effect.scoped(receive(client, request)) // The reply socket closes as soon as it served.
    if (opened?.fd != null) {
      const fd = opened.fd
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.closeSync(fd)))
    }
    return opened
  })

const receive = (client: Client, request: { readonly job_id: string; readonly stream: LogStream }) =>
  Effect.gen(function*() {
    const name = `planter-fd-${randomBytes(16).toString("hex")}`
    const token = randomBytes(FdPassing.TOKEN_BYTES)
    const listening = yield* Effect.either(listen(name))
    if (listening._tag === "Left") return null
    const { arrived, connections } = listening.right
    const info = yield* client.LogsOpen({
      job_id: request.job_id,
      stream: request.stream,
      reply_to: name,
      token: token.toString("hex")
    })
    if (!info.sent) return { fd: null, size: info.size, complete: info.complete } satisfies OpenLogFile
    // The daemon sent before it answered, so the message is already queued; only libuv's accept may lag.
    const deadline = Date.now() + ACCEPT_TIMEOUT_MS
    for (;;) {
      for (const connection of connections.splice(0)) {
        const message = yield* Effect.promise(() => FdPassing.recvFd(connection).catch(() => null))
        connection.destroy()
        if (message === null || message.fd === null) continue
        if (Buffer.from(message.token).equals(token)) {
          return { fd: message.fd, size: info.size, complete: info.complete } satisfies OpenLogFile
        }
        fs.closeSync(message.fd) // Someone else's message on our name: not the daemon's.
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) return null
      yield* Deferred.await(arrived).pipe(Effect.timeout(remaining), Effect.ignore)
      if (connections.length === 0) return null
    }
  })
