/** Sample statistics and number formatting for the benchmark report. */

export interface Summary {
  readonly n: number
  readonly p50: number
  readonly p99: number
  readonly min: number
  readonly max: number
  readonly mean: number
}

/** Nearest-rank percentile of an ascending array: the smallest sample with at least p % of samples at or below it. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1]!
}

export const summarize = (samples: ReadonlyArray<number>): Summary => {
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: sorted.reduce((sum, x) => sum + x, 0) / Math.max(1, sorted.length)
  }
}

export const median = (values: ReadonlyArray<number>): number => percentile([...values].sort((a, b) => a - b), 50)

/** Milliseconds with precision that suits their size: 0.042 ms, 1.23 ms, 45.6 ms. */
export const ms = (value: number): string =>
  Number.isNaN(value)
    ? "n/a"
    : value < 1
    ? `${value.toFixed(3)} ms`
    : value < 100
    ? `${value.toFixed(2)} ms`
    : `${value.toFixed(0)} ms`

/** Bytes per second in decimal GB/s (1 GB = 10^9 bytes), the unit the targets use. */
export const gbps = (bytesPerSecond: number): string => `${(bytesPerSecond / 1e9).toFixed(2)} GB/s`

export const round = (value: number, digits = 4): number => Number(value.toFixed(digits))
