import { describe, expect, it } from "@effect/vitest"
import { makeMsgPack } from "../../src/rpc/Serialization.js"

const encodeAll = (values: ReadonlyArray<unknown>) => {
  const parser = makeMsgPack(1 << 20).unsafeMake()
  return Buffer.concat(values.map((value) => parser.encode(value) as Uint8Array))
}

/** Feeds `bytes` to a fresh decoder in pieces of `size`, collecting what it yields. */
const decodeInPieces = (bytes: Uint8Array, size: number, maxBufferSize = 1 << 20) => {
  const parser = makeMsgPack(maxBufferSize).unsafeMake()
  const out: Array<unknown> = []
  for (let i = 0; i < bytes.length; i += size) {
    // A copy per piece, as sockets hand out fresh buffers.
    out.push(...(parser.decode(Uint8Array.from(bytes.subarray(i, i + size))) as Array<unknown>))
  }
  return out
}

describe("msgpack framing", () => {
  const values = [
    { _tag: "Request", id: "1", tag: "Health", payload: {} },
    { _tag: "Exit", data: new Uint8Array(200_000).fill(7), offset: 5 },
    { _tag: "Request", id: "2", tag: "LogsRead", payload: { job_id: "job-a", offset: 0 } }
  ]

  it("decodes the same values however the bytes are split, binary data intact", () => {
    const bytes = encodeAll(values)
    for (const size of [3, 4096, 65_536, bytes.length]) {
      const decoded = decodeInPieces(bytes, size)
      expect(decoded).toHaveLength(3)
      expect(decoded[0]).toEqual(values[0])
      expect(decoded[2]).toEqual(values[2])
      const data = (decoded[1] as { data: Uint8Array }).data
      expect(data.length).toBe(200_000)
      expect(data.every((byte) => byte === 7)).toBe(true)
    }
  })

  it("refuses a frame larger than its limit, then decodes the next connection's frames", () => {
    const big = encodeAll([{ data: new Uint8Array(50_000) }])
    expect(() => decodeInPieces(big, 4096, 10_000)).toThrow(/BufferSizeExceeded|buffer/i)
    expect(decodeInPieces(encodeAll([values[0]]), 3, 10_000)).toEqual([values[0]])
  })
})
