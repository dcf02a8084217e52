import * as fs from "node:fs"

/**
 * `size` random bytes from the kernel's CSPRNG (/dev/urandom, which never
 * blocks once the kernel's pool is seeded, as it is on a running system):
 * the same source OpenSSL seeds node:crypto's randomBytes from.
 *
 * The daemon's bundle serves every `node:crypto` import from this module
 * (scripts/bundle-daemon.mjs): loading node:crypto costs 0.5–2 MB of RSS
 * (its ~30 modules and OpenSSL's set-up) for the few ids and tokens the
 * daemon draws, where one read of /dev/urandom does (docs/benchmarks.md,
 * "Start-up compaction").
 */
export const randomBytes = (size: number): Buffer => {
  const bytes = Buffer.alloc(size)
  const fd = fs.openSync("/dev/urandom", "r")
  try {
    for (let filled = 0; filled < size;) {
      filled += fs.readSync(fd, bytes, filled, size - filled, null)
    }
  } finally {
    fs.closeSync(fd)
  }
  return bytes
}
