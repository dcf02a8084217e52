import { Effect } from "effect"
import * as net from "node:net"

/** Resolves true when something accepts connections at `socketPath`. */
export const daemonAnswers = (socketPath: string) =>
  Effect.map(probeSocket(socketPath), (result) => result === "answered")

/** "answered" when something accepts connections at `socketPath`, else the connect error's code (ENOENT, EACCES, …). */
export const probeSocket = (socketPath: string) =>
  Effect.async<string>((resume) => {
    const connection = net.createConnection({ path: socketPath })
    let done = false
    const finish = (result: string) => {
      if (done) return
      done = true
      connection.destroy()
      resume(Effect.succeed(result))
    }
    connection.once("connect", () => finish("answered"))
    connection.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? "error"))
    // In a process starved of CPU (a busy machine, many clients at once) the
    // timer can fire before a connect that already completed is delivered:
    // let pending I/O run once more before saying nothing answers.
    connection.setTimeout(1000, () => setImmediate(() => finish("ETIMEDOUT")))
    return Effect.sync(() => connection.destroy())
  })
