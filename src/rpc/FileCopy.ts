/**
 * In-kernel copy between two regular files (Linux `copy_file_range`), as
 * `cat` does: `planter logs JOB > file` moves the bytes from the log's
 * descriptor to stdout without them ever entering this process.
 */
import * as fs from "node:fs"

let copyFileRange:
  | ((fdIn: number, offIn: Array<bigint>, fdOut: number, offOut: null, length: number, flags: number) => number)
  | null
  | undefined
let dup2: ((from: number, to: number) => number) | undefined

const load = async () => {
  if (copyFileRange !== undefined) return copyFileRange
  if (process.platform !== "linux") return (copyFileRange = null)
  try {
    const koffi = (await import("koffi")).default
    const libc = koffi.load("libc.so.6")
    const fn = libc.func(
      "long copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)"
    )
    copyFileRange = (fdIn, offIn, fdOut, offOut, length, flags) => Number(fn(fdIn, offIn, fdOut, offOut, length, flags))
    const dup2Fn = libc.func("int dup2(int oldfd, int newfd)")
    dup2 = (from, to) => Number(dup2Fn(from, to))
  } catch {
    copyFileRange = null
  }
  return copyFileRange
}

/** Kernel copies are asked for in pieces this large (one call cannot move more than ~2 GiB anyway). */
const PIECE_BYTES = 1024 * 1024 * 1024

/**
 * Copies `fdIn` from `offset` to its end onto `fdOut` at its current
 * position. Answers the offset reached, or null when the kernel cannot do
 * it for these two files (not Linux, an O_APPEND or non-regular output,
 * another file system on an old kernel) and nothing was copied: then copy
 * through a buffer.
 */
export const copyToEnd = async (fdIn: number, offset: number, fdOut: number): Promise<number | null> => {
  const copy = await load()
  if (copy === null) return null
  const position = [BigInt(offset)]
  for (;;) {
    const n = copy(fdIn, position, fdOut, null, PIECE_BYTES, 0)
    if (n < 0) {
      return Number(position[0]) === offset
        ? null
        : Promise.reject(new Error("copy_file_range failed part-way"))
    }
    if (n === 0) return Number(position[0])
  }
}

/**
 * Points descriptor 1 at /dev/null once every byte is on the output file.
 * The koffi binding, once loaded, fsyncs stdout and stderr when the process
 * exits (a static destructor of its runtime): on a file just written that
 * forces hundreds of MiB to disk, which `cat` never does and nobody asked
 * for. Call only when nothing more will be written to stdout.
 */
export const releaseStdout = () => {
  if (dup2 === undefined) return
  try {
    const devNull = fs.openSync("/dev/null", "w")
    dup2(devNull, 1)
    fs.closeSync(devNull)
  } catch {
    // Then the exit fsyncs: slower, never wrong.
  }
}
