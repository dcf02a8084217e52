import { Effect } from "effect"

/** glibc's mallopt parameter for the size from which an allocation gets its own mapping. */
const M_MMAP_THRESHOLD = -3

/** 128 KiB: glibc's starting value, which it would otherwise raise as the daemon runs. */
const MMAP_THRESHOLD_BYTES = 128 * 1024

/**
 * Keeps large buffers (a 4 MiB log chunk, its encoded answer) in mappings of
 * their own, which go back to the OS as soon as they are freed. glibc
 * raises its mmap threshold each time such a mapping is freed, up to
 * 32 MiB, after which those buffers come from the heap arenas and their
 * pages stay with the daemon: a 512 MiB log read left the daemon 46 MB
 * larger for good; with the threshold fixed, 13 MB (docs/benchmarks.md).
 * Setting it also turns off the raising. Linux with glibc only; elsewhere
 * (musl has no mallopt, macOS its own allocator) nothing is done.
 */
export const fixMmapThreshold = Effect.promise(async () => {
  if (process.platform !== "linux") return
  try {
    const koffi = (await import("koffi")).default
    const mallopt = koffi.load("libc.so.6").func("int mallopt(int param, int value)") as (
      param: number,
      value: number
    ) => number
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
  } catch {
    // Not glibc: its allocator has its own policy.
  }
}).pipe(Effect.withSpan("MallocTuning.fixMmapThreshold"))
