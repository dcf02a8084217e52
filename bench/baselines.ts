/**
 * The baselines the design's targets are measured against: the same work done
 * with bare Node, with no daemon in between.
 */
import { spawn, type SpawnOptions } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"

/**
 * Spawns `file args`, answering the milliseconds from the call to the `spawn`
 * event (libuv reports it once exec has succeeded, which is also when the pid
 * is known) and then waiting, untimed, for the process to exit so runs never
 * overlap.
 */
export const timeSpawn = (file: string, args: ReadonlyArray<string>, options: SpawnOptions): Promise<number> =>
  new Promise((resolve, reject) => {
    const start = performance.now()
    let elapsed = Number.NaN
    const child = spawn(file, args, options)
    child.once("spawn", () => {
      elapsed = performance.now() - start
    })
    child.once("error", reject)
    child.once("exit", (code, signal) => {
      if (code !== 0) reject(new Error(`${file} ${args.join(" ")} exited with ${code ?? signal}`))
      else resolve(elapsed)
    })
  })

export interface EchoPair {
  /** One round trip of `message`, in milliseconds. */
  readonly roundTrip: (message: Buffer) => Promise<number>
  readonly close: () => Promise<void>
}

/**
 * A raw Node echo over a Unix socket: a net server in this process that
 * writes back whatever it receives, and one connected client.
 */
export const startEcho = async (socketPath: string): Promise<EchoPair> => {
  const server = net.createServer((connection) => {
    connection.on("data", (data) => connection.write(data))
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(socketPath, () => resolve())
  })
  const client = net.createConnection({ path: socketPath })
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve())
    client.once("error", reject)
  })

  let pending: { expected: number; received: number; start: number; resolve: (ms: number) => void } | undefined
  client.on("data", (data) => {
    if (pending === undefined) return
    pending.received += data.length
    if (pending.received >= pending.expected) {
      const done = pending
      pending = undefined
      done.resolve(performance.now() - done.start)
    }
  })

  return {
    roundTrip: (message) =>
      new Promise((resolve) => {
        pending = { expected: message.length, received: 0, start: performance.now(), resolve }
        client.write(message)
      }),
    close: async () => {
      client.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** Reads `file` front to back with `fs.read` in `chunk`-byte reads into one buffer; answers bytes and seconds. */
export const fsReadThroughput = async (file: string, chunk: number): Promise<{ bytes: number; seconds: number }> => {
  const buffer = Buffer.allocUnsafe(chunk)
  const start = performance.now()
  const fd = await new Promise<number>((resolve, reject) =>
    fs.open(file, "r", (error, fd) => (error ? reject(error) : resolve(fd)))
  )
  let bytes = 0
  for (;;) {
    const read = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buffer, 0, chunk, bytes, (error, n) => (error ? reject(error) : resolve(n)))
    )
    if (read === 0) break
    bytes += read
  }
  await new Promise<void>((resolve) => fs.close(fd, () => resolve()))
  return { bytes, seconds: (performance.now() - start) / 1000 }
}
