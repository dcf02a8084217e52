const units: ReadonlyArray<readonly [string, number]> = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1000]
]

/** `3 minutes ago`, `about an hour ago`-free and plain: the largest whole unit, as `docker ps` does. */
export const ago = (thenMs: number, nowMs: number): string => {
  const elapsed = Math.max(0, nowMs - thenMs)
  if (elapsed < 1000) return "just now"
  for (const [name, size] of units) {
    const n = Math.floor(elapsed / size)
    if (n >= 1) return `${n} ${name}${n === 1 ? "" : "s"} ago`
  }
  return "just now"
}

/** `850ms`, `12s`, `3m04s`, `2h05m`, `3d04h`: two units at most, for a column. */
export const shortDuration = (ms: number): string => {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h}h${String(m % 60).padStart(2, "0")}m`
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`
}
