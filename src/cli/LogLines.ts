/**
 * Pure helpers for `planter logs`: where the last N lines start, lines with
 * the time the daemon saw them, where `--since` starts, and lossless JSON
 * text for bytes that may not be UTF-8.
 */

const NEWLINE = 0x0a

/**
 * The offset where the last `n` lines of a log of `size` bytes start,
 * reading backwards through `readAt(offset, length)`. A final line without
 * its newline counts as a line.
 */
export const tailStart = (
  size: number,
  n: number,
  readAt: (offset: number, length: number) => Uint8Array,
  block = 64 * 1024
): number => {
  if (n <= 0 || size === 0) return size
  let newlines = 0
  let end = size
  // The newline that ends the last line does not start a new one.
  let skipLast = true
  while (end > 0) {
    const start = Math.max(0, end - block)
    const bytes = readAt(start, end - start)
    for (let i = bytes.length - 1; i >= 0; i--) {
      if (bytes[i] !== NEWLINE) {
        skipLast = false
        continue
      }
      if (skipLast && start + i === size - 1) {
        skipLast = false
        continue
      }
      newlines++
      if (newlines === n) return start + i + 1
    }
    end = start
  }
  return 0
}

export interface Line {
  /** Offset of its first byte in the log. */
  readonly start: number
  readonly bytes: Uint8Array
  /** It ends with a newline (false for the last, still partial line). */
  readonly complete: boolean
}

/** Splits `bytes`, read from offset `base`, into lines that keep their newline. */
export const splitLines = (bytes: Uint8Array, base: number): Array<Line> => {
  const lines: Array<Line> = []
  let from = 0
  for (;;) {
    const at = bytes.indexOf(NEWLINE, from)
    if (at < 0) break
    lines.push({ start: base + from, bytes: bytes.subarray(from, at + 1), complete: true })
    from = at + 1
  }
  if (from < bytes.length) lines.push({ start: base + from, bytes: bytes.subarray(from), complete: false })
  return lines
}

/** [offset, at_ms]: the daemon saw the log `offset` bytes long at `at_ms`. Offsets increase. */
export type Mark = readonly [number, number]

/**
 * When the daemon first saw the byte before `end` (i.e. a line ending at
 * `end`): the time of the first mark at or past it. The line was written at
 * or before that time, and after the previous mark's. Null when no mark
 * covers it yet (written since the daemon last looked).
 */
export const seenAt = (marks: ReadonlyArray<Mark>, end: number): number | null => {
  let low = 0
  let high = marks.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (marks[mid]![0] >= end) high = mid
    else low = mid + 1
  }
  return low < marks.length ? marks[low]![1] : null
}

/**
 * The offset from which everything was written at or after `sinceMs`: the
 * last mark seen at or before that time (bytes before it were written
 * earlier). Lines from there may have been written up to one sampling
 * interval before `sinceMs`; nothing written after it is left out.
 */
export const sinceOffset = (marks: ReadonlyArray<Mark>, sinceMs: number): number => {
  let offset = 0
  for (const [at, time] of marks) {
    if (time > sinceMs) break
    offset = at
  }
  return offset
}

/** The start of the line holding `offset`: `--since` prints whole lines. */
export const lineStart = (offset: number, readAt: (offset: number, length: number) => Uint8Array): number => {
  let end = offset
  while (end > 0) {
    const start = Math.max(0, end - 4096)
    const bytes = readAt(start, end - start)
    const at = bytes.lastIndexOf(NEWLINE)
    if (at >= 0) return start + at + 1
    end = start
  }
  return 0
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/** Bytes as JSON can carry them losslessly: UTF-8 text as itself, anything else as base64, saying which. */
export const jsonBytes = (bytes: Uint8Array): { encoding: "utf8" | "base64"; data: string } => {
  try {
    return { encoding: "utf8", data: strictUtf8.decode(bytes) }
  } catch {
    return {
      encoding: "base64",
      data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
    }
  }
}

/** `--since`: a duration back from now (`30s`, `5m`, `2h`, `1d`) or a time (ISO 8601, or ms since the epoch). */
export const parseSince = (
  text: string,
  nowMs: number,
  parseDuration: (text: string) => number | string
): number | string => {
  const duration = parseDuration(text)
  if (typeof duration === "number") return nowMs - duration
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const time = Date.parse(text)
    if (!Number.isNaN(time)) return time
  }
  if (/^\d{10,}$/.test(text)) return Number(text)
  return `${text}: give a duration back from now (30s, 5m, 2h, 1d) or a time (2026-11-25T14:00:00Z, or ms since the epoch)`
}

/** How `--timestamps` prints a time: RFC 3339 in UTC with milliseconds, as `docker logs -t` does. */
export const formatStamp = (ms: number) => new Date(ms).toISOString()
