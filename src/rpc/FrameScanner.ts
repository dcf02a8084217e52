import { Data } from "effect"

/**
 * A frame that cannot be one: a header declaring more than the frame cap
 * could hold, nesting deeper than any message, or a msgpack form this
 * protocol never sends. The connection that sent it is closed.
 */
export class FrameRejected extends Data.TaggedError("FrameRejected")<{ readonly message: string }> {}

/** Deeper than any message of the protocol (a request nests fewer than 10 levels). */
export const MAX_FRAME_DEPTH = 64

/**
 * msgpackr extension types that read a nested value after their header
 * (Error, Set, RegExp, structured-clone ids and pointers, bundled strings):
 * their length would not say where the frame ends, and the protocol never
 * sends them.
 */
const NESTED_EXTENSIONS = new Set([0x62, 0x65, 0x69, 0x70, 0x73, 0x78])

/** msgpackr's record definition extension ("r"). */
const RECORD = 0x72

const NEED_MORE = -1

/**
 * Finds where each msgpack frame (one top-level value) ends, reading every
 * byte once, however the bytes arrive: its state (values still owed at
 * each open level, bytes of a string still to skip) survives between
 * chunks, so a frame fed a few bytes at a time costs no more than one fed
 * whole. Only a header cut by a chunk's end is read again, and a header is
 * at most 8 bytes. Decoding then happens once per complete frame.
 *
 * Every header is checked against the frame cap as soon as it is read:
 * each value owed takes at least one byte, so an array, map or string
 * declaring more than the rest of the cap allows is refused at once, not
 * after megabytes have been gathered for it.
 *
 * It follows the records of msgpackr (`useRecords`), as Packr writes them:
 * a definition `d4 72 <id>` then the keys array, then the values; later,
 * a byte 0x40–0x7f names a defined record and is followed by its values.
 * Definitions are per frame (each pack() call starts afresh).
 */
export class FrameScanner {
  /** Values still owed at each open level, innermost last. */
  private owed: Array<number> = [1]
  /** Their sum: the fewest bytes the frame still needs. */
  private owedTotal = 1
  /** Bytes of a string, binary or extension body still to skip. */
  private skip = 0
  /** Bytes of the current frame already read. */
  private offset = 0
  /** Field counts of the records defined so far in this frame, by id. */
  private records: Array<number | undefined> = []

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes of the current, incomplete frame read so far. */
  get pendingBytes() {
    return this.offset
  }

  /**
   * Scans `input[frameStart, end)`, the frame's bytes so far (the scanner
   * resumes where it stopped). Answers the end of the frame, or -1 when it
   * needs more bytes; throws FrameRejected for a frame that cannot be one.
   */
  scan(input: Uint8Array, frameStart: number, end: number = input.length): number {
    let p = frameStart + this.offset
    if (this.skip > 0) {
      const taken = Math.min(this.skip, end - p)
      this.skip -= taken
      p += taken
      if (this.skip > 0) return this.pause(p, frameStart)
      this.settle()
      if (this.owed.length === 0) return this.finish(p)
    }
    while (p < end) {
      const token = input[p]!
      let header = 1
      let values = 0
      let bytes = 0
      if (token < 0x80) {
        // A fixint, or a record reference once that record is defined.
        values = token >= 0x40 ? (this.records[token & 0x3f] ?? 0) : 0
      } else if (token < 0x90) {
        values = (token - 0x80) * 2
      } else if (token < 0xa0) {
        values = token - 0x90
      } else if (token < 0xc0) {
        bytes = token - 0xa0
      } else if (token >= 0xe0) {
        // A negative fixint.
      } else {
        switch (token) {
          case 0xc0:
          case 0xc2:
          case 0xc3:
            break
          case 0xc4:
          case 0xd9:
            header = 2
            if (p + header > end) return this.pause(p, frameStart)
            bytes = input[p + 1]!
            break
          case 0xc5:
          case 0xda:
            header = 3
            if (p + header > end) return this.pause(p, frameStart)
            bytes = be16(input, p + 1)
            break
          case 0xc6:
          case 0xdb:
            header = 5
            if (p + header > end) return this.pause(p, frameStart)
            bytes = be32(input, p + 1)
            break
          case 0xc7:
          case 0xc8:
          case 0xc9: {
            const width = token === 0xc7 ? 1 : token === 0xc8 ? 2 : 4
            header = 2 + width
            if (p + header > end) return this.pause(p, frameStart)
            bytes = width === 1 ? input[p + 1]! : width === 2 ? be16(input, p + 1) : be32(input, p + 1)
            this.checkExtension(input[p + 1 + width]!)
            if (input[p + 1 + width] === RECORD) this.reject("a record definition in a long extension form")
            break
          }
          case 0xca:
          case 0xce:
          case 0xd2:
            header = 5
            break
          case 0xcb:
          case 0xcf:
          case 0xd3:
            header = 9
            break
          case 0xcc:
          case 0xd0:
            header = 2
            break
          case 0xcd:
          case 0xd1:
            header = 3
            break
          case 0xd4: {
            if (p + 2 > end) return this.pause(p, frameStart)
            const type = input[p + 1]!
            if (type !== RECORD) {
              this.checkExtension(type)
              header = 3
              break
            }
            // A record definition: its id, the keys array, then as many values.
            if (p + 4 > end) return this.pause(p, frameStart)
            const id = input[p + 2]! & 0x3f
            const keys = input[p + 3]!
            let fields: number
            if (keys >= 0x90 && keys <= 0x9f) {
              header = 4
              fields = keys - 0x90
            } else if (keys === 0xdc) {
              header = 6
              if (p + header > end) return this.pause(p, frameStart)
              fields = be16(input, p + 4)
            } else if (keys === 0xdd) {
              header = 8
              if (p + header > end) return this.pause(p, frameStart)
              fields = be32(input, p + 4)
            } else {
              return this.reject("a record definition without its keys array")
            }
            this.records[id] = fields
            values = fields * 2
            break
          }
          case 0xd5:
            if (p + 2 > end) return this.pause(p, frameStart)
            if (input[p + 1] === RECORD) return this.reject("a two-byte record id")
            this.checkExtension(input[p + 1]!)
            header = 4
            break
          case 0xd6:
          case 0xd7:
          case 0xd8:
            if (p + 2 > end) return this.pause(p, frameStart)
            this.checkExtension(input[p + 1]!)
            header = token === 0xd6 ? 6 : token === 0xd7 ? 10 : 18
            break
          case 0xdc:
          case 0xde:
            header = 3
            if (p + header > end) return this.pause(p, frameStart)
            values = be16(input, p + 1) * (token === 0xde ? 2 : 1)
            break
          case 0xdd:
          case 0xdf:
            header = 5
            if (p + header > end) return this.pause(p, frameStart)
            values = be32(input, p + 1) * (token === 0xdf ? 2 : 1)
            break
          default:
            return this.reject(`the byte 0x${token.toString(16)}, which msgpack does not use`)
        }
      }
      // Fixed-width values (numbers, small extensions) are whole or not at all.
      if (bytes === 0 && values === 0 && p + header > end) return this.pause(p, frameStart)
      p += header
      this.owed[this.owed.length - 1]!--
      this.owedTotal--
      if (values > 0) {
        if (this.owed.length >= MAX_FRAME_DEPTH) return this.reject(`nesting deeper than ${MAX_FRAME_DEPTH} levels`)
        this.owed.push(values)
        this.owedTotal += values
      }
      if (p - frameStart + this.owedTotal + bytes > this.maxFrameBytes) {
        return this.reject(
          `a header declaring ${
            values > 0 ? `${values} values` : `${bytes} bytes`
          }, more than a frame of at most ${this.maxFrameBytes} bytes can hold`
        )
      }
      if (bytes > 0) {
        const taken = Math.min(bytes, end - p)
        p += taken
        if (taken < bytes) {
          this.skip = bytes - taken
          return this.pause(p, frameStart)
        }
      }
      this.settle()
      if (this.owed.length === 0) return this.finish(p)
    }
    return this.pause(p, frameStart)
  }

  /** The fewest bytes the current, incomplete frame can have, from what its headers declared so far. */
  get leastFrameBytes() {
    return this.offset + this.owedTotal + this.skip
  }

  /** Forgets the current frame (after an error: the connection is closed). */
  reset() {
    this.owed = [1]
    this.owedTotal = 1
    this.skip = 0
    this.offset = 0
    this.records = []
  }

  /** Closes the levels whose values are all read. */
  private settle() {
    while (this.owed.length > 0 && this.owed[this.owed.length - 1] === 0) this.owed.pop()
  }

  private pause(p: number, frameStart: number) {
    this.offset = p - frameStart
    if (this.offset + this.owedTotal + this.skip > this.maxFrameBytes) {
      return this.reject(`a frame longer than ${this.maxFrameBytes} bytes`)
    }
    return NEED_MORE
  }

  private finish(p: number) {
    this.reset()
    return p
  }

  private checkExtension(type: number) {
    if (NESTED_EXTENSIONS.has(type)) {
      this.reject(`the msgpack extension 0x${type.toString(16)}, which this protocol never sends`)
    }
  }

  private reject(what: string): never {
    this.reset()
    throw new FrameRejected({ message: `refused a frame: ${what}` })
  }
}

const be16 = (bytes: Uint8Array, at: number) => (bytes[at]! << 8) | bytes[at + 1]!
const be32 = (bytes: Uint8Array, at: number) =>
  bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!)
