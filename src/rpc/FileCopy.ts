/**
 * In-kernel copy between two regular files (Linux `copy_file_range`), as
 * `cat` does: `planter logs JOB > file` moves the bytes from the log's
 * descriptor to stdout without them ever entering this process.
 */
let copyFileRange:
  | ((fdIn: number, offIn: Array<bigint>, fdOut: number, offOut: null, length: number, flags: number) => number)
  | null
  | undefined
let exitNow: ((code: number) => void) | undefined

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
    const exitFn = libc.func("void _exit(int status)")
    exitNow = (code) => exitFn(code)
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
 * Ends the process with `code` now that the command is done. Once the
 * koffi binding is loaded, its runtime's static destructor fsyncs stdout and
 * stderr when the process exits: on a file just written (`planter logs JOB
 * > file`) that forces hundreds of MiB to disk, which `cat` never does and
 * nobody asked for. So after node's own exit work (the 'exit' listeners,
 * this one last) the process ends with libc's `_exit`, which runs no
 * destructors. stdout and stderr need no flush: on Linux node writes them
 * synchronously (files, pipes and terminals alike).
 */
export const exitProcess = (code: number): never => {
  const now = exitNow
  if (now !== undefined) process.once("exit", (exitCode) => now(typeof exitCode === "number" ? exitCode : code))
  return process.exit(code)
}
