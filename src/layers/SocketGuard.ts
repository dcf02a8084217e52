import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { daemonAnswers } from "../rpc/SocketProbe.js"

/** planterd cannot take its socket path; the message says what to do. */
export class SocketPathError extends Schema.TaggedError<SocketPathError>()("SocketPathError", {
  message: Schema.String
}) {}

/**
 * Prepares the socket path before listening: a stale socket left by a
 * crashed daemon is replaced, but a live daemon or a file that is not a
 * socket is never touched.
 */
export const claimSocketPath = Effect.fn("SocketGuard.claimSocketPath")(function*(socketPath: string) {
  yield* Effect.try({
    try: () => fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 }),
    catch: (error) => new SocketPathError({ message: `cannot create the socket's directory ${path.dirname(socketPath)}: ${String(error)}` })
  })
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
  if (yield* daemonAnswers(socketPath)) {
    return yield* new SocketPathError({
      message: `a daemon is already listening on ${socketPath}: stop it first, or give this one a socket and a state dir of its own (--socket PATH --state-dir DIR)`
    })
  }
  yield* Effect.logInfo(`replacing stale socket ${socketPath}`)
  yield* Effect.sync(() => fs.rmSync(socketPath, { force: true }))
})

/**
 * After listening: only the owner may connect (until the authorization
 * policy lands). On close the socket file is removed, if it is still ours.
 */
export const secureAndRemoveOnClose = Effect.fn("SocketGuard.secureAndRemoveOnClose")(function*(socketPath: string) {
  const inode = yield* Effect.sync(() => {
    fs.chmodSync(socketPath, 0o600)
    return fs.statSync(socketPath).ino
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
})
