import { describe, expect, it } from "vitest"
import { jsonBytes, lineStart, parseSince, seenAt, sinceOffset, splitLines, tailStart } from "../../src/cli/LogLines.js"
import { parseDuration } from "../../src/services/Limits.js"

const reader = (text: string) => {
  const bytes = Buffer.from(text)
  return (offset: number, length: number) => bytes.subarray(offset, offset + length)
}

describe("tailStart", () => {
  const cases: Array<[string, number, string]> = [
    ["a\nb\nc\n", 2, "b\nc\n"],
    ["a\nb\nc", 2, "b\nc"],
    ["a\nb\nc\n", 10, "a\nb\nc\n"],
    ["a\nb\nc\n", 0, ""],
    ["\n\n\n", 2, "\n\n"],
    ["", 3, ""],
    ["only", 1, "only"]
  ]
  for (const [text, n, expected] of cases) {
    it(`${JSON.stringify(text)} --tail ${n} → ${JSON.stringify(expected)}`, () => {
      expect(text.slice(tailStart(text.length, n, reader(text)))).toBe(expected)
    })
  }

  it("finds lines across read blocks", () => {
    const text = Array.from({ length: 1000 }, (_, i) => `line ${i}`).join("\n") + "\n"
    expect(text.slice(tailStart(text.length, 3, reader(text), 7))).toBe("line 997\nline 998\nline 999\n")
  })
})

describe("splitLines", () => {
  it("keeps newlines, offsets and a partial last line", () => {
    const lines = splitLines(Buffer.from("ab\nc\nde"), 10)
    expect(lines.map((line) => [line.start, Buffer.from(line.bytes).toString(), line.complete])).toEqual([
      [10, "ab\n", true],
      [13, "c\n", true],
      [15, "de", false]
    ])
  })
})

describe("marks", () => {
  const marks = [[6, 1000], [11, 2000], [20, 3000]] as const

  it("a line is timed by the first mark that covers its last byte; none yet is null", () => {
    expect(seenAt(marks, 6)).toBe(1000)
    expect(seenAt(marks, 7)).toBe(2000)
    expect(seenAt(marks, 20)).toBe(3000)
    expect(seenAt(marks, 21)).toBeNull()
    expect(seenAt([], 1)).toBeNull()
  })

  it("--since starts at the last mark seen at or before the time", () => {
    expect(sinceOffset(marks, 500)).toBe(0)
    expect(sinceOffset(marks, 1000)).toBe(6)
    expect(sinceOffset(marks, 2500)).toBe(11)
    expect(sinceOffset(marks, 9999)).toBe(20)
  })

  it("lineStart backs up to the start of the line holding an offset", () => {
    const text = "first\nsecond\nthird"
    expect(lineStart(8, reader(text))).toBe(6)
    expect(lineStart(6, reader(text))).toBe(6)
    expect(lineStart(3, reader(text))).toBe(0)
  })
})

describe("jsonBytes", () => {
  it("UTF-8 stays text, anything else is base64 that decodes to the same bytes", () => {
    expect(jsonBytes(Buffer.from("héllo\n"))).toEqual({ encoding: "utf8", data: "héllo\n" })
    const binary = Buffer.from([0x61, 0xff, 0x00, 0xc3])
    const encoded = jsonBytes(binary)
    expect(encoded.encoding).toBe("base64")
    expect(Buffer.from(encoded.data, "base64").equals(binary)).toBe(true)
  })
})

describe("parseSince", () => {
  it("takes durations back from now, ISO times and epoch ms; refuses anything else", () => {
    expect(parseSince("10m", 1_000_000, parseDuration)).toBe(400_000)
    expect(parseSince("2026-11-25T14:00:00Z", 0, parseDuration)).toBe(Date.parse("2026-11-25T14:00:00Z"))
    expect(parseSince("1795640434337", 0, parseDuration)).toBe(1795640434337)
    expect(parseSince("yesterday", 0, parseDuration)).toContain("give a duration")
  })
})
