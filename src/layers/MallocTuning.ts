import { createRequire } from "node:module"

/** glibc's mallopt parameter for the size from which an allocation gets its own mapping. */
const M_MMAP_THRESHOLD = -3

/** glibc's mallopt parameter for how many malloc arenas the process's threads may use. */
const M_ARENA_MAX = -8

/** 128 KiB: glibc's starting value, which it would otherwise raise as the daemon runs. */
const MMAP_THRESHOLD_BYTES = 128 * 1024

/**
 * Tunes glibc's allocator for a long-lived daemon; must run before the
 * daemon's other modules are loaded (src/cli/planterdLauncher.ts loads it first).
 *
 * - The mmap threshold fixed at 128 KiB keeps large buffers (a 4 MiB log
 *   chunk, its encoded answer) in mappings of their own, which go back to
 *   the OS as soon as they are freed. glibc raises its threshold each time
 *   such a mapping is freed, up to 32 MiB, after which those buffers come
 *   from the heap arenas and their pages stay with the daemon: a 512 MiB
 *   log read left the daemon 46 MB larger for good; with the threshold
 *   fixed, 13 MB (docs/benchmarks.md).
 * - One arena for every thread: by default each thread that allocates
 *   (libuv's pool, V8's compiler and GC workers) gets an arena of its own,
 *   up to 8 per core, and memory freed in one is never reused by another;
 *   after 2 000 jobs and a log read the daemon held ~18 MB of free but
 *   resident malloc memory over 6–7 arenas, ~3 MB with one
 *   (docs/benchmarks.md, "Daemon memory"). The limit only binds threads
 *   that have not allocated yet, hence as early as possible.
 *
 * Linux with glibc only; elsewhere (musl has no mallopt, macOS its own
 * allocator) nothing is done.
 */
export const tuneMalloc = (): void => {
  const mallopt = glibcFunction<(param: number, value: number) => number>("int mallopt(int param, int value)")
  if (mallopt === undefined) return
  mallopt(M_ARENA_MAX, 1)
  mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
}

/**
 * Gives the pages of freed malloc memory back to the OS: glibc returns
 * only the top of its heap by itself, and keeps free chunks below a live
 * one resident. Start-up alone (parsing and compiling the bundle, opening
 * SQLite) left 0.4–7 MB of such pages in the daemon (docs/benchmarks.md,
 * "Start-up compaction"); a call costs 0.1–0.3 ms. Returns false where there is
 * no glibc (nothing to do) or nothing was released.
 */
export const trimMalloc: () => boolean = (() => {
  let trim: ((pad: number) => number) | undefined | null = null
  return () => {
    if (trim === null) trim = glibcFunction<(pad: number) => number>("int malloc_trim(size_t pad)")
    return trim !== undefined && trim(0) === 1
  }
})()

/** A glibc function through koffi, or undefined off Linux or where libc is not glibc (musl has neither). */
const glibcFunction = <F>(signature: string): F | undefined => {
  if (process.platform !== "linux") return undefined
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
    return koffi.load("libc.so.6").func(signature) as F
  } catch {
    // Not glibc: its allocator has its own policy.
    return undefined
  }
}
