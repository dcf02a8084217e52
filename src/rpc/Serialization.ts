import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Layer from "effect/Layer"
import { Packr, Unpackr } from "msgpackr"
import { FrameScanner } from "./FrameScanner.js"
import { MAX_LOG_CHUNK_BYTES } from "./Rpcs.js"

/**
 * The largest request frame the daemon takes; a larger one closes that
 * connection. Requests hold an argv and env (the kernel caps a command line
 * at about 2 MiB), so anything beyond is garbage or abuse.
 */
export const MAX_REQUEST_FRAME_BYTES = 3 * 1024 * 1024

/** The largest response frame a client takes: a full log chunk plus its envelope. */
export const MAX_RESPONSE_FRAME_BYTES = MAX_LOG_CHUNK_BYTES + 1024 * 1024

/**
 * msgpackr encodes every message into one buffer that it keeps for the next
 * (module-wide, shared by every Packr) and returns a view of it; a message
 * that does not fit gets a new buffer 4 times its size, which is then kept
 * in turn: one 4 MiB log chunk left the daemon holding a 16 MiB buffer for
 * good (docs/benchmarks.md, "Daemon memory"). After a message whose buffer
 * is larger than this, the next one starts in a small fresh buffer, so the
 * large one is freed as soon as the answer written from it is.
 */
const LARGE_ENCODE_BUFFER_BYTES = 1024 * 1024

/**
 * The one request whose exchange stays in msgpackr's records (see below): a client checks the
 * daemon's protocol version with it before anything else, so it must read the same to a peer of any
 * protocol version.
 */
const HANDSHAKE_TAG = "Version"

/** Version requests whose answers are not encoded yet: more would be a peer that never reads them. */
const MAX_PENDING_HANDSHAKES = 16

const isHandshakeRequest = (message: unknown): message is { readonly id: unknown } =>
  typeof message === "object" && message !== null && (message as { _tag?: unknown })._tag === "Request" &&
  (message as { tag?: unknown }).tag === HANDSHAKE_TAG

const isExit = (message: unknown): message is { readonly requestId: unknown } =>
  typeof message === "object" && message !== null && (message as { _tag?: unknown })._tag === "Exit"

/**
 * Room for a message's envelope around its one large binary value: the
 * request id, the other fields and their keys.
 */
const ENVELOPE_BYTES = 64 * 1024

/**
 * The length of the large binary value a message carries, or 0: a log
 * chunk's bytes in an answer (LogsRead), a job's input in a request
 * (JobInput). msgpackr grows a buffer that is too small to 4 times what
 * the message needs, copying what it wrote so far: for each 1 MiB log
 * chunk a fresh 4 MiB buffer, whose external memory made V8 run a full
 * collection every few chunks (docs/benchmarks.md, "LogsRead: the
 * fallback path"). Sized from the start, the message is written once into
 * a buffer of its own size.
 */
const binaryLength = (message: unknown): number => {
  if (typeof message !== "object" || message === null) return 0
  const m = message as {
    readonly exit?: { readonly value?: { readonly data?: unknown } }
    readonly payload?: { readonly data?: unknown }
  }
  const data = m.exit?.value?.data ?? m.payload?.data
  return data instanceof Uint8Array ? data.length : 0
}

/** Room, after the bytes a frame's headers declared, for the fields that follow (a log chunk's offset and flags). */
const FRAME_TAIL_BYTES = 4096

/**
 * msgpack framing whose decoding work is bounded by the bytes received. The stock
 * decoder re-parses the whole partial frame on every socket read (a frame
 * fed 16 KiB at a time costs time in the square of its size) and trusts
 * its headers. Here a FrameScanner reads each byte once to find where a
 * frame ends, refusing an impossible header (an array, map or string
 * larger than the frame cap) as soon as it arrives; each complete frame
 * is then decoded once. Partial frames gather in a buffer that grows by
 * doubling, up to the cap.
 */
export const makeMsgPack = (
  maxBufferSize: number,
  options: {
    /**
     * The bytes handed to `decode` are a read buffer that the next read
     * overwrites (a socket's `onread` buffer): the binaries of frames
     * decoded straight from them are copied out; those gathered from
     * several reads are views of a buffer of their own, as always.
     */
    readonly transientReads?: boolean
  } = {}
): RpcSerialization.RpcSerialization["Type"] =>
  RpcSerialization.RpcSerialization.of({
    contentType: "application/msgpack",
    includesFraming: true,
    unsafeMake() {
      // Plain msgpack maps (since protocol 6): msgpackr's records defined every record again in every message,
      // which cost both sides more to write and read (and more code for V8 to compile) than the keys do
      // (docs/benchmarks.md, "Health: what the client's scavenges kept, and maps instead of records").
      // This decoder reads both: `mapsAsObjects` makes maps plain objects, and records are always understood.
      const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true })
      // msgpackr's `copyBuffers` option, kept on the instance and read on every unpack: set per decode.
      const copying = unpackr as { copyBuffers?: boolean }
      const packr = new Packr({ useRecords: false })
      // The version handshake in records, both ways, so that peers of different protocols still read it and
      // can say which protocol the other speaks (planter 0.1.0's decoder, protocol 5, reads a map as a `Map`):
      // a client sends its Version request so, and the daemon answers a Version request so.
      const handshakePackr = new Packr({ useRecords: true })
      /** Ids of the Version requests decoded and not answered yet. */
      const handshakes = new Set<unknown>()
      const encoder = new TextEncoder()
      const scanner = new FrameScanner(maxBufferSize)
      // Pending bytes of an incomplete frame: buffer[0, length).
      let buffer: Uint8Array<ArrayBufferLike> = new Uint8Array(0)
      let length = 0

      /**
       * The room a pending frame of which `received` bytes are here gets from
       * what its headers declared (a log chunk's binary), or 0. Only once
       * the frame has brought 32 KiB: a header alone (5 bytes declaring a
       * 3 MiB binary, then nothing) sets aside no more than the bytes sent.
       */
      const declaredRoom = (received: number) =>
        received >= 32 * 1024 ? Math.min(maxBufferSize, scanner.leastFrameBytes + FRAME_TAIL_BYTES) : 0

      const forget = () => {
        length = 0
        buffer = new Uint8Array(0)
        scanner.reset()
      }

      return {
        decode(bytes) {
          const chunk = typeof bytes === "string" ? encoder.encode(bytes) : bytes
          let input: Uint8Array
          if (length === 0) {
            input = chunk
          } else {
            // The scanner has checked the frame against the cap; this only sizes the buffer.
            if (length + chunk.length > buffer.length) {
              const grown: Uint8Array = Buffer.allocUnsafe(
                Math.max(buffer.length * 2, length + chunk.length, declaredRoom(length + chunk.length))
              )
              grown.set(buffer.subarray(0, length))
              buffer = grown
            }
            buffer.set(chunk, length)
            length += chunk.length
            input = buffer.subarray(0, length)
          }
          copying.copyBuffers = options.transientReads === true && input === chunk
          const values: Array<unknown> = []
          let start = 0
          try {
            while (start < input.length) {
              const end = scanner.scan(input, start)
              if (end < 0) break
              const value = unpackr.unpack(input.subarray(start, end))
              if (isHandshakeRequest(value) && handshakes.size < MAX_PENDING_HANDSHAKES) handshakes.add(value.id)
              values.push(value)
              start = end
            }
          } catch (error) {
            forget()
            throw error
          }
          if (start === input.length) {
            length = 0
            buffer = new Uint8Array(0)
          } else if (input === chunk || start > 0) {
            // A fresh buffer, never the old one: decoded binary values are
            // views into the bytes they were decoded from and must stay
            // intact. Uninitialised memory: every byte read is written
            // first. A large frame's headers have usually declared most of
            // its size by now (a log chunk's binary): the buffer is made
            // that size, with room for the fields after it, so it is
            // neither grown nor twice too large.
            const rest = input.length - start
            const next: Uint8Array = Buffer.allocUnsafe(Math.max(rest, declaredRoom(rest) || 64 * 1024))
            next.set(input.subarray(start))
            buffer = next
            length = rest
          }
          // Else: still the same incomplete frame, already in the buffer.
          return values
        },
        encode: (message) => {
          if (
            isHandshakeRequest(message) ||
            (handshakes.size > 0 && isExit(message) && handshakes.delete(message.requestId))
          ) return handshakePackr.pack(message)
          const binary = binaryLength(message)
          if (binary > LARGE_ENCODE_BUFFER_BYTES / 2) packr.useBuffer(Buffer.allocUnsafeSlow(binary + ENVELOPE_BYTES))
          const bytes = packr.pack(message)
          if (bytes.buffer.byteLength > LARGE_ENCODE_BUFFER_BYTES) packr.useBuffer(Buffer.allocUnsafeSlow(8192))
          return bytes
        }
      }
    }
  })

/** msgpack on the daemon's side of the socket. */
export const ServerSerializationLive = Layer.succeed(
  RpcSerialization.RpcSerialization,
  makeMsgPack(MAX_REQUEST_FRAME_BYTES)
)

/** msgpack on a client's side of the socket. */
export const clientSerialization = makeMsgPack(MAX_RESPONSE_FRAME_BYTES, { transientReads: true })
