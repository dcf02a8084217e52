import { describe, expect, it } from "@effect/vitest"
import { Packr, Unpackr } from "msgpackr"
import { vi } from "vitest"
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

  it("does not keep a large message's buffer for the next messages, and still encodes them correctly", () => {
    const parser = makeMsgPack(8 << 20).unsafeMake()
    const chunk = { _tag: "Exit", data: new Uint8Array(4 << 20).fill(9), offset: 4 << 20 }
    const large = parser.encode(chunk) as Uint8Array
    // msgpackr would write every later message into the buffer it grew for this one (16 MiB) and keep it.
    const next = parser.encode(values[0]) as Uint8Array
    expect(next.buffer === large.buffer).toBe(false)
    expect(next.buffer.byteLength).toBeLessThan(1 << 20)
    const again = parser.encode(values[2]) as Uint8Array
    const decoded = decodeInPieces(Buffer.concat([large, next, again]), 1 << 20, 8 << 20)
    expect(decoded[1]).toEqual(values[0])
    expect(decoded[2]).toEqual(values[2])
    const data = (decoded[0] as { data: Uint8Array }).data
    expect(data.length).toBe(4 << 20)
    expect(data.every((byte) => byte === 9)).toBe(true)
  })

  it("writes a log chunk's answer and a job's input into a buffer of their own size, not four times it", () => {
    const parser = makeMsgPack(8 << 20).unsafeMake()
    const data = new Uint8Array(1 << 20).fill(3)
    const answer = {
      _tag: "Exit",
      requestId: "12",
      exit: { _tag: "Success", value: { data, offset: 1 << 20, eof: false, complete: false } }
    }
    const input = { _tag: "Request", id: "13", tag: "JobInput", payload: { job_id: "job-a", data } }
    for (const message of [answer, input]) {
      const bytes = parser.encode(message) as Uint8Array
      // msgpackr alone grows its buffer to 4 MiB for this message: external memory V8 collects for with full GCs.
      expect(bytes.buffer.byteLength).toBeLessThanOrEqual(bytes.length + 64 * 1024)
      // Bytes for bytes what msgpackr alone writes (maps).
      expect(Buffer.from(bytes).equals(new Packr({ useRecords: false }).pack(message))).toBe(true)
    }
  })

  it("gathers a large frame read in socket-sized pieces into a buffer of the frame's size", () => {
    const data = new Uint8Array(1 << 20).fill(5)
    const bytes = encodeAll([{ _tag: "Exit", requestId: "1", exit: { _tag: "Success", value: { data, offset: 9 } } }])
    const [decoded] = decodeInPieces(bytes, 65_536, 8 << 20) as Array<{ exit: { value: { data: Uint8Array } } }>
    const received = decoded!.exit.value.data
    expect(received.length).toBe(1 << 20)
    expect(received.every((byte) => byte === 5)).toBe(true)
    // The chunk a caller keeps holds the buffer it was decoded from: the frame and a little room, not 2 MiB.
    expect(received.buffer.byteLength).toBeLessThanOrEqual(bytes.length + 4096)
  })

  it("sizes a pending frame's buffer by what its headers declare only once the bytes arrive in earnest", () => {
    // A peer that sends a header declaring a 3 MiB binary and nothing more must not make the daemon set aside
    // 3 MiB for it (per connection: 5 bytes each, hundreds of connections); a frame whose first read already
    // brought 64 KiB is likely real and large.
    const parser = makeMsgPack(3 << 20).unsafeMake()
    const declared = (3 << 20) - 1024
    const header = Buffer.from([0xc6, declared >>> 24, (declared >>> 16) & 255, (declared >>> 8) & 255, declared & 255])
    const allocUnsafe = vi.spyOn(Buffer, "allocUnsafe")
    try {
      expect(parser.decode(Buffer.concat([header, Buffer.alloc(3, 1)]))).toEqual([])
      const sizes = allocUnsafe.mock.calls.map(([size]) => size)
      expect(Math.max(0, ...sizes), `buffers made for a 8-byte partial frame: ${sizes.join(", ")}`)
        .toBeLessThanOrEqual(64 * 1024)
      // Once the bytes come, the buffer grows to the declared size at once, not by doubling.
      allocUnsafe.mockClear()
      expect(parser.decode(Buffer.alloc(65_536, 1))).toEqual([])
      expect(allocUnsafe.mock.calls.map(([size]) => size)).toEqual([Math.min(3 << 20, declared + 5 + 4096)])
      allocUnsafe.mockClear()
      const sizable = makeMsgPack(3 << 20).unsafeMake()
      expect(sizable.decode(Buffer.concat([header, Buffer.alloc(65_536 - header.length, 2)]))).toEqual([])
      expect(Math.max(0, ...allocUnsafe.mock.calls.map(([size]) => size))).toBeGreaterThanOrEqual(declared)
    } finally {
      allocUnsafe.mockRestore()
    }
  })

  it("with transient reads, keeps no view of the read buffer: a binary decoded from it survives the next read", () => {
    const parser = makeMsgPack(1 << 20, { transientReads: true }).unsafeMake()
    const small = encodeAll([{ _tag: "Exit", data: new Uint8Array(100).fill(1) }])
    const large = encodeAll([{ _tag: "Exit", data: new Uint8Array(100_000).fill(2) }])
    const readBuffer = new Uint8Array(65_536)
    const read = (bytes: Uint8Array) => {
      readBuffer.set(bytes)
      return parser.decode(readBuffer.subarray(0, bytes.length)) as Array<{ data: Uint8Array }>
    }
    const [whole] = read(small)
    // A frame that takes two reads is gathered into a buffer of its own.
    expect(read(large.subarray(0, 65_536))).toEqual([])
    const [gathered] = read(large.subarray(65_536))
    readBuffer.fill(0xee)
    expect(whole!.data.every((byte) => byte === 1)).toBe(true)
    expect(gathered!.data.length).toBe(100_000)
    expect(gathered!.data.every((byte) => byte === 2)).toBe(true)
  })

  it("refuses a frame larger than its limit, then decodes the next connection's frames", () => {
    const big = encodeAll([{ data: new Uint8Array(50_000) }])
    expect(() => decodeInPieces(big, 4096, 10_000)).toThrow(/refused a frame.*10000 bytes/)
    expect(decodeInPieces(encodeAll([values[0]]), 3, 10_000)).toEqual([values[0]])
  })

  it("decodes each frame once, however many pieces it comes in (work bounded by the bytes received)", () => {
    const frame = encodeAll([{
      _tag: "Request",
      id: "9",
      payload: { argv: Array.from({ length: 20_000 }, (_, i) => `arg-${i}`) }
    }])
    expect(frame.length).toBeGreaterThan(150_000)
    const unpack = vi.spyOn(Unpackr.prototype, "unpack")
    try {
      const decoded = decodeInPieces(frame, 1024)
      expect(decoded).toHaveLength(1)
      expect((decoded[0] as { payload: { argv: Array<string> } }).payload.argv[19_999]).toBe("arg-19999")
      expect(unpack).toHaveBeenCalledTimes(1)
    } finally {
      unpack.mockRestore()
    }
  })

  it("refuses an impossible header at once: an array, map or string larger than the frame cap", () => {
    const cap = 3 * 1024 * 1024
    const headers = [
      Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), // an array of 4 294 967 295 values
      Uint8Array.of(0xdf, 0x00, 0x20, 0x00, 0x00), // a map of 2 097 152 pairs: 4 Mi values
      Uint8Array.of(0xdb, 0x00, 0x40, 0x00, 0x00), // a 4 MiB string
      Uint8Array.of(0xc6, 0x00, 0x40, 0x00, 0x00), // 4 MiB of binary
      // Inside a request: a record whose payload declares a 1-billion-value array.
      Buffer.concat([
        new Packr({ useRecords: true }).pack({ _tag: "Request", payload: null }).subarray(0, -1),
        Uint8Array.of(0xdd, 0x3b, 0x9a, 0xca, 0x00)
      ])
    ]
    for (const header of headers) {
      // The first piece alone is refused: nothing is gathered for it.
      const parser = makeMsgPack(cap).unsafeMake()
      expect(() => parser.decode(header)).toThrow(/refused a frame: a header declaring/)
    }
  })

  it("refuses nesting deeper than any message, and msgpack forms the protocol never sends", () => {
    const deep = new Uint8Array(100).fill(0x91)
    expect(() => makeMsgPack(1 << 20).unsafeMake().decode(deep)).toThrow(/nesting deeper/)
    expect(() => makeMsgPack(1 << 20).unsafeMake().decode(Uint8Array.of(0xc1))).toThrow(/0xc1/)
    // A Set (msgpackr's extension 0x73 reads a nested value after its header).
    expect(() => makeMsgPack(1 << 20).unsafeMake().decode(Uint8Array.of(0xd4, 0x73, 0x00, 0x90))).toThrow(
      /extension 0x73/
    )
  })

  it("frames what msgpackr writes, maps or records: redefined records, extensions, every width of header", () => {
    const samples: Array<unknown> = [
      { a: 1, b: [1, 2, 3], c: { d: "x".repeat(300), e: null, f: true } },
      Array.from({ length: 70 }, (_, i) => ({ [`k${i}`]: i })), // more record shapes than ids: ids are reused
      { big: "y".repeat(70_000), list: new Array(70_000).fill(0) },
      { n: -1, m: -200, f: 1.5, i: 2 ** 40, neg: -(2 ** 40), u8: 200, u16: 60_000, u32: 4_000_000_000, small: 100 },
      { date: new Date(1_700_000_000_123), undef: undefined, empty: {}, emptyArray: [] },
      "just a string",
      42
    ]
    // This encoder's maps, and the records a peer of protocol 5 (and the version handshake) writes.
    const records = new Packr({ useRecords: true })
    for (const bytes of [encodeAll(samples), Buffer.concat(samples.map((sample) => records.pack(sample)))]) {
      for (const size of [1, 7, 4096, bytes.length]) {
        const decoded = decodeInPieces(bytes, size)
        expect(decoded).toEqual(samples)
      }
    }
  })
})

describe("maps on the wire, the version handshake in records", () => {
  /** msgpackr's record definition (`d4 72 <id>`) starts a frame written with records. */
  const startsWithRecord = (bytes: Uint8Array) => bytes[0] === 0xd4 && bytes[1] === 0x72
  const request = (id: string, tag: string) => ({ _tag: "Request", id, tag, payload: { job_id: "j" }, headers: [] })
  const exit = (requestId: string) => ({
    _tag: "Exit",
    requestId,
    exit: { _tag: "Success", value: { version: "0.1.0", protocol_version: 6 } }
  })
  /** How a peer of protocol 5 (planter 0.1.0) decoded (msgpackr with records, maps as `Map`s). */
  const protocol5 = () => new Unpackr({ useRecords: true })

  it("writes every message as plain maps but a Version request", () => {
    const client = makeMsgPack(1 << 20).unsafeMake()
    const health = client.encode(request("1", "Health")) as Uint8Array
    expect(health[0]).toBe(0xde) // a map (msgpackr writes every map as map 16)
    expect(makeMsgPack(1 << 20).unsafeMake().decode(health)).toEqual([request("1", "Health")])
    const version = client.encode(request("2", "Version")) as Uint8Array
    expect(startsWithRecord(version)).toBe(true)
    // A daemon of protocol 5 reads it as it read every request, and so can answer which protocol it speaks.
    expect(protocol5().unpack(version)).toEqual(request("2", "Version"))
  })

  it("answers a Version request in records, once, and everything else in maps", () => {
    const daemon = makeMsgPack(1 << 20).unsafeMake()
    // A client of protocol 5 sends records; this decoder reads them.
    const asked = daemon.decode(new Packr({ useRecords: true }).pack(request("7", "Version")))
    expect(asked).toEqual([request("7", "Version")])
    daemon.decode(daemon.encode(request("8", "Health")) as Uint8Array)
    const answer = daemon.encode(exit("7")) as Uint8Array
    expect(startsWithRecord(answer)).toBe(true)
    // The client of protocol 5 reads the answer as plain objects, and can say the protocols differ.
    expect(protocol5().unpack(answer)).toEqual(exit("7"))
    expect(startsWithRecord(daemon.encode(exit("8")) as Uint8Array)).toBe(false)
    expect(startsWithRecord(daemon.encode(exit("7")) as Uint8Array)).toBe(false) // answered already
  })

  it("remembers at most a few unanswered Version requests", () => {
    const daemon = makeMsgPack(1 << 20).unsafeMake()
    const client = makeMsgPack(1 << 20).unsafeMake()
    for (let i = 0; i < 100; i++) daemon.decode(client.encode(request(String(i), "Version")) as Uint8Array)
    const inRecords = Array.from(
      { length: 100 },
      (_, i) => startsWithRecord(daemon.encode(exit(String(i))) as Uint8Array)
    )
    expect(inRecords.filter(Boolean).length).toBe(16)
  })
})
