/**
 * `--json` and `--socket` are global, but people type them after the
 * subcommand (`planter job ls --json`). They are moved in front of it here,
 * never past `--`, where the job's own argv begins.
 */
export const hoistGlobalOptions = (args: ReadonlyArray<string>): Array<string> => {
  const end = args.indexOf("--")
  const head = end < 0 ? [...args] : args.slice(0, end)
  const tail = end < 0 ? [] : args.slice(end)
  const globals: Array<string> = []
  const rest: Array<string> = []
  for (let i = 0; i < head.length; i++) {
    const arg = head[i]!
    // Said twice is still one flag (@effect/cli refuses a repeated boolean with a usage error).
    if (arg === "--json") {
      if (!globals.includes(arg)) globals.push(arg)
    } else if (arg === "--socket" && i + 1 < head.length) globals.push(arg, head[++i]!)
    else if (arg.startsWith("--socket=")) globals.push("--socket", arg.slice("--socket=".length))
    else rest.push(arg)
  }
  return [...globals, ...rest, ...tail]
}
