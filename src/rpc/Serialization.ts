import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Layer from "effect/Layer"
import { Packr, Unpackr } from "msgpackr"
import { MAX_LOG_CHUNK_BYTES } from "./Rpcs.js"

/**
 * The largest request frame the daemon takes; a larger one closes that
 * connection. Requests hold an argv and env (the kernel caps a command line
 * at about 2 MiB), so anything beyond is garbage or abuse.
 */
export const MAX_REQUEST_FRAME_BYTES = 3 * 1024 * 1024

/** The largest response frame a client takes: a full log chunk plus its envelope. */
export const MAX_RESPONSE_FRAME_BYTES = MAX_LOG_CHUNK_BYTES + 1024 * 1024

const isIncomplete = (error: unknown): error is { incomplete: true; lastPosition: number; values?: Array<unknown> } =>
  typeof error === "object" && error !== null && (error as { incomplete?: boolean }).incomplete === true

/**
 * msgpack framing, wire-compatible with `RpcSerialization.msgPack` (records
 * on), with a decoder that gathers a partial frame in a buffer that grows by
 * doubling. The stock decoder concatenates the whole partial frame again on
 * every socket read, which makes a 1 MiB log chunk cost ~8 MiB of copies and
 * a hostile oversized frame cost memory in the square of its size.
 */
export const makeMsgPack = (maxBufferSize: number): RpcSerialization.RpcSerialization["Type"] =>
  RpcSerialization.RpcSerialization.of({
    contentType: "application/msgpack",
    includesFraming: true,
    unsafeMake() {
      const unpackr = new Unpackr({ useRecords: true })
      const packr = new Packr({ useRecords: true })
      const encoder = new TextEncoder()
      // Pending bytes of an incomplete frame: buffer[0, length).
      let buffer: Uint8Array<ArrayBufferLike> = new Uint8Array(0)
      let length = 0

      const keepRemainder = (from: Uint8Array, start: number) => {
        const rest = from.length - start
        if (rest > maxBufferSize) {
          length = 0
          buffer = new Uint8Array(0)
          throw new RpcSerialization.RpcSerializationError({ reason: "BufferSizeExceeded", maxBufferSize, bufferSize: rest })
        }
        // A fresh buffer, never the old one: decoded binary values are views
        // into the bytes they were decoded from and must stay intact.
        // Uninitialised memory: every byte read is written first. A frame
        // that already filled a whole socket read is likely large; start big.
        const next: Uint8Array = Buffer.allocUnsafe(rest >= 32 * 1024 ? Math.min(maxBufferSize, 2 * 1024 * 1024) : 64 * 1024)
        next.set(from.subarray(start))
        buffer = next
        length = rest
      }

      return {
        decode(bytes) {
          const chunk = typeof bytes === "string" ? encoder.encode(bytes) : bytes
          let input: Uint8Array
          if (length === 0) {
            input = chunk
          } else {
            if (length + chunk.length > maxBufferSize) {
              const bufferSize = length + chunk.length
              length = 0
              buffer = new Uint8Array(0)
              throw new RpcSerialization.RpcSerializationError({ reason: "BufferSizeExceeded", maxBufferSize, bufferSize })
            }
            if (length + chunk.length > buffer.length) {
              const grown: Uint8Array = Buffer.allocUnsafe(Math.min(maxBufferSize, Math.max(buffer.length * 2, length + chunk.length)))
              grown.set(buffer.subarray(0, length))
              buffer = grown
            }
            buffer.set(chunk, length)
            length += chunk.length
            input = buffer.subarray(0, length)
          }
          try {
            const values = unpackr.unpackMultiple(input) as Array<unknown>
            length = 0
            buffer = new Uint8Array(0)
            return values
          } catch (error) {
            if (!isIncomplete(error)) {
              length = 0
              buffer = new Uint8Array(0)
              throw error
            }
            if (input === chunk || (error.values?.length ?? 0) > 0) {
              keepRemainder(input, error.lastPosition)
            }
            // Else: still the same incomplete frame, already in the buffer.
            return error.values ?? []
          }
        },
        encode: (message) => packr.pack(message)
      }
    }
  })

/** msgpack on the daemon's side of the socket. */
export const ServerSerializationLive = Layer.succeed(RpcSerialization.RpcSerialization, makeMsgPack(MAX_REQUEST_FRAME_BYTES))

/** msgpack on a client's side of the socket. */
export const ClientSerializationLive = Layer.succeed(RpcSerialization.RpcSerialization, makeMsgPack(MAX_RESPONSE_FRAME_BYTES))
