import { Effect } from "effect"
import * as net from "node:net"

/** Resolves true when something accepts connections at `socketPath`. */
export const daemonAnswers = (socketPath: string) =>
  Effect.async<boolean>((resume) => {
    const connection = net.createConnection({ path: socketPath })
    let done = false
    const finish = (answered: boolean) => {
      if (done) return
      done = true
      connection.destroy()
      resume(Effect.succeed(answered))
    }
    connection.once("connect", () => finish(true))
    connection.once("error", () => finish(false))
    // In a process starved of CPU (a busy machine, many clients at once) the
    // timer can fire before a connect that already completed is delivered:
    // let pending I/O run once more before saying nothing answers.
    connection.setTimeout(1000, () => setImmediate(() => finish(false)))
    return Effect.sync(() => connection.destroy())
  })
