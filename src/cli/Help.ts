/**
 * `planter … --help`: short, plain help written for people, one entry per
 * command path, each with a one-line description, its usage with the full
 * command path, every option with one line and an example. @effect/cli
 * still parses the command line; its generated help (with completions,
 * wizard and log-level boilerplate, and ANSI codes when piped) is not shown.
 * test/unit/Help.test.ts checks that every option a command accepts is here.
 */

export interface OptionHelp {
  readonly flag: string
  readonly text: string
}

export interface CommandHelp {
  readonly path: string
  readonly description: string
  readonly usage: string
  readonly options: ReadonlyArray<OptionHelp>
  readonly examples: ReadonlyArray<string>
}

const LIMITS: ReadonlyArray<OptionHelp> = [
  { flag: "--timeout D", text: "end jobs with reason timeout after D, e.g. --timeout 30s (units ms, s, m, h, d)" },
  {
    flag: "--max-rss SIZE",
    text: "end jobs with reason memory_limit when their tree's RSS passes SIZE, e.g. --max-rss 512M"
  },
  { flag: "--max-log SIZE", text: "end jobs with reason log_quota when stdout + stderr pass SIZE, e.g. --max-log 100M" }
]

const CREATE_OPTIONS: ReadonlyArray<OptionHelp> = [
  { flag: "--name NAME", text: "the cell's name, unique, e.g. --name demo" },
  { flag: "--env K=V", text: "an environment variable of its jobs (repeatable), e.g. --env GREETING=hello" },
  { flag: "--read PATH", text: "a path its jobs may read in the sandbox (repeatable), e.g. --read /srv/data" },
  { flag: "--network allow|deny", text: "network access of its jobs (default allow), e.g. --network deny" },
  ...LIMITS
]

const createHelp = (path: string): CommandHelp => ({
  path,
  description: "Create a cell: a directory with its own environment and sandbox policy",
  usage:
    `planter ${path} --name NAME [--env K=V]... [--read PATH]... [--network allow|deny] [--timeout D] [--max-rss SIZE] [--max-log SIZE]`,
  options: CREATE_OPTIONS,
  examples: [
    `planter ${path} --name demo --env GREETING=hello`,
    `planter ${path} --name ci --timeout 10m --max-rss 2G --network deny`
  ]
})

export const commands: ReadonlyArray<CommandHelp> = [
  {
    path: "",
    description: "Talk to planterd: cells, jobs and their logs",
    usage: "planter [--socket PATH] [--json] COMMAND [ARGS]",
    options: [
      {
        flag: "--socket PATH",
        text:
          "planterd's socket (default $PLANTER_SOCKET, else <state dir>/planterd.sock), e.g. --socket /run/planter/planterd.sock"
      },
      { flag: "--json", text: "print exactly one JSON document on stdout, errors too, e.g. planter job ls --json" },
      { flag: "--help, -h", text: "this help; `planter COMMAND --help` for a command's, e.g. planter run --help" },
      { flag: "--version", text: "the CLI's version, e.g. planter --version" },
      {
        flag: "--completions SHELL",
        text: "print a completion script for bash, zsh, fish or sh, e.g. planter --completions bash"
      }
    ],
    examples: ["planter create --name demo", "planter run demo --name hello --wait -- echo hi", "planter job ls"]
  },
  {
    path: "version",
    description: "Print the client's and the daemon's versions and protocols",
    usage: "planter version",
    options: [],
    examples: ["planter version", "planter --json version"]
  },
  {
    path: "health",
    description: "Check that the daemon answers, and how it runs (sandbox, monitor, running jobs)",
    usage: "planter health",
    options: [],
    examples: ["planter health"]
  },
  createHelp("create"),
  {
    path: "cell",
    description: "Manage cells",
    usage: "planter cell COMMAND",
    options: [],
    examples: ["planter cell ls", "planter cell show demo"]
  },
  createHelp("cell create"),
  {
    path: "cell ls",
    description: "List cells",
    usage: "planter cell ls [--limit N | --all]",
    options: [
      { flag: "--limit N", text: "at most N cells, e.g. --limit 20" },
      { flag: "--all", text: "every cell, not only the first page, e.g. planter cell ls --all" }
    ],
    examples: ["planter cell ls"]
  },
  {
    path: "cell show",
    description: "Show a cell: its dir, env, policy, limits and how many jobs it ran",
    usage: "planter cell show CELL",
    options: [],
    examples: ["planter cell show demo"]
  },
  {
    path: "cell rm",
    description: "Remove a cell and its directory (refused while its jobs run)",
    usage: "planter cell rm CELL [--force]",
    options: [{ flag: "--force", text: "kill the cell's running jobs first, e.g. planter cell rm demo --force" }],
    examples: ["planter cell rm demo"]
  },
  {
    path: "run",
    description: "Run a command in a cell; print its id, or stream its output with --wait",
    usage:
      "planter run CELL [--name NAME] [--label K=V]... [--env K=V]... [--cwd DIR] [--network allow|deny] [--timeout D] [--max-rss SIZE] [--max-log SIZE] [--wait [-i] [--detach-on-interrupt]] -- ARGV...",
    options: [
      {
        flag: "--name NAME",
        text: "name the job (unique among the cell's running jobs); usable wherever a JOB is, e.g. --name build"
      },
      { flag: "--label K=V", text: "label the job (repeatable), filter with job ls --label, e.g. --label branch=main" },
      { flag: "--env K=V", text: "an environment variable of the job (repeatable), e.g. --env DEBUG=1" },
      { flag: "--cwd DIR", text: "working directory inside the cell dir, e.g. --cwd src" },
      { flag: "--network allow|deny", text: "tighten the cell's network policy, e.g. --network deny" },
      ...LIMITS,
      {
        flag: "--wait",
        text:
          "stream the job's output and exit with its exit code (128+N when killed by signal N), e.g. planter run demo --wait -- make"
      },
      {
        flag: "-i, --interactive",
        text: "with --wait: forward stdin to the job, e.g. echo hi | planter run demo --wait -i -- cat"
      },
      {
        flag: "--detach-on-interrupt",
        text:
          "with --wait: Ctrl-C leaves the job running instead of killing it, e.g. planter run demo --wait --detach-on-interrupt -- make"
      }
    ],
    examples: [
      "planter run demo -- sh -c 'echo hi'",
      "planter run ci --name build --label branch=main --wait -- make",
      "echo hi | planter run demo --wait -i -- cat"
    ]
  },
  {
    path: "job",
    description: "Inspect, kill and remove jobs",
    usage: "planter job COMMAND",
    options: [],
    examples: ["planter job ls", "planter job status build"]
  },
  {
    path: "job status",
    description: "Show a job's record: command, status, exit code or signal, limits, usage",
    usage: "planter job status JOB",
    options: [],
    examples: ["planter job status build", "planter --json job status job-mk3x0a1b2c3d"]
  },
  {
    path: "job ls",
    description: "List jobs like docker ps: id, name, cell, status, started, duration, command",
    usage: "planter job ls [--cell CELL] [--name NAME] [--label K=V]... [--status S] [--limit N | --all]",
    options: [
      { flag: "--cell CELL", text: "only this cell's jobs, e.g. --cell demo" },
      { flag: "--status S", text: "only jobs in this status, e.g. --status running" },
      { flag: "--limit N", text: "at most N jobs (the most recent), e.g. --limit 20" },
      { flag: "--all", text: "every job, not only the most recent page, e.g. planter job ls --all" },
      { flag: "--name NAME", text: "only jobs with this name, e.g. --name build" },
      { flag: "--label K=V", text: "only jobs with this label (repeatable: all must match), e.g. --label branch=main" }
    ],
    examples: ["planter job ls", "planter job ls --cell ci --label branch=main"]
  },
  {
    path: "job kill",
    description: "Kill a job's whole process tree: SIGTERM, then SIGKILL after the grace period",
    usage: "planter job kill JOB [--force]",
    options: [{ flag: "--force", text: "SIGKILL at once, e.g. planter job kill build --force" }],
    examples: ["planter job kill build"]
  },
  {
    path: "job rm",
    description: "Remove a finished job: its record and its logs",
    usage: "planter job rm JOB",
    options: [],
    examples: ["planter job rm build"]
  },
  {
    path: "job prune",
    description: "Remove finished jobs that ended long enough ago: records and logs",
    usage: "planter job prune --older-than D [--cell CELL]",
    options: [
      { flag: "--older-than D", text: "jobs that ended at least D ago, e.g. --older-than 7d" },
      { flag: "--cell CELL", text: "only this cell's jobs, e.g. --cell ci" }
    ],
    examples: ["planter job prune --older-than 7d", "planter job prune --older-than 12h --cell ci"]
  },
  {
    path: "job stats",
    description: "Show running jobs with their live usage (same as planter top)",
    usage: "planter job stats [--once] [--interval-ms N]",
    options: [
      { flag: "--once", text: "print once and exit, e.g. planter job stats --once" },
      { flag: "--interval-ms N", text: "refresh period in milliseconds (default 1000), e.g. --interval-ms 500" }
    ],
    examples: ["planter job stats --once"]
  },
  {
    path: "top",
    description: "Show running jobs with their live usage (RSS, CPU %, processes, log bytes), refreshing",
    usage: "planter top [--once] [--interval-ms N]",
    options: [
      { flag: "--once", text: "print once and exit, e.g. planter top --once" },
      { flag: "--interval-ms N", text: "refresh period in milliseconds (default 1000), e.g. --interval-ms 500" }
    ],
    examples: ["planter top"]
  },
  {
    path: "logs",
    description: "Print a job's output from an offset, optionally following it until the job ends",
    usage: "planter logs JOB [-f] [--stderr | --all] [--offset N] [--tail N] [--since D|TIME] [-t]",
    options: [
      {
        flag: "-f, --follow",
        text:
          "keep reading until the job ends, then exit with its exit code (128+N for signal N), e.g. planter logs build -f"
      },
      { flag: "--stderr", text: "read stderr instead of stdout, e.g. planter logs build --stderr" },
      { flag: "--all", text: "stdout and stderr interleaved as they arrived, e.g. planter logs build --all" },
      { flag: "--offset N", text: "start at byte N, e.g. --offset 1024" },
      { flag: "--tail N", text: "only the last N lines, e.g. planter logs build --tail 20" },
      {
        flag: "--since D|TIME",
        text: "only output written in the last D or since TIME, e.g. --since 5m, --since 2026-11-25T14:00:00Z"
      },
      {
        flag: "-t, --timestamps",
        text: "prefix each line with when the daemon saw it (within 250 ms), e.g. planter logs build -t"
      }
    ],
    examples: ["planter logs build --tail 20 --all", "planter logs build -f"]
  },
  {
    path: "events",
    description: "Show the events journal: jobs started and ended, requests, refusals",
    usage: "planter events [--since D] [--job JOB] [--cell CELL] [--limit N] [-f]",
    options: [
      { flag: "-f, --follow", text: "keep printing events as they happen, e.g. planter events -f" },
      { flag: "--since D", text: "only events from the last D, e.g. --since 1h" },
      { flag: "--job JOB", text: "only this job's events, e.g. --job build" },
      { flag: "--cell CELL", text: "only this cell's events, e.g. --cell demo" },
      { flag: "--limit N", text: "at most N events, e.g. --limit 50" }
    ],
    examples: ["planter events --since 1h", "planter events --job build"]
  },
  {
    path: "debug",
    description: "Look inside the daemon",
    usage: "planter debug COMMAND",
    options: [],
    examples: ["planter debug fibers"]
  },
  {
    path: "debug fibers",
    description: "List the daemon's fibers: what it is doing right now",
    usage: "planter debug fibers",
    options: [],
    examples: ["planter debug fibers"]
  }
]

const byPath = new Map(commands.map((command) => [command.path, command]))

/** The subcommands of a path ("" for the top level). */
export const subcommandsOf = (path: string): ReadonlyArray<string> =>
  commands
    .filter((command) =>
      command.path !== path && (path === "" ? !command.path.includes(" ") : command.path.startsWith(`${path} `))
    )
    .map((command) => command.path.slice(path === "" ? 0 : path.length + 1))
    .filter((name) => !name.includes(" "))

export const renderHelp = (help: CommandHelp): string => {
  const lines = [help.description, "", `Usage: ${help.usage}`]
  const subcommands = subcommandsOf(help.path)
  if (subcommands.length > 0) {
    lines.push("", "Commands:")
    const width = Math.max(...subcommands.map((name) => name.length))
    for (const name of subcommands) {
      lines.push(
        `  ${name.padEnd(width)}  ${byPath.get(help.path === "" ? name : `${help.path} ${name}`)!.description}`
      )
    }
  }
  if (help.options.length > 0) {
    lines.push("", "Options:")
    const width = Math.max(...help.options.map((option) => option.flag.length))
    for (const option of help.options) lines.push(`  ${option.flag.padEnd(width)}  ${option.text}`)
  }
  lines.push("", "Examples:", ...help.examples.map((example) => `  ${example}`))
  if (subcommands.length > 0) {
    lines.push("", `Run \`planter ${help.path === "" ? "" : `${help.path} `}COMMAND --help\` for a command's options.`)
  }
  return lines.join("\n") + "\n"
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment): `lst`→`ls`, `stauts`→`status`. */
const distance = (a: string, b: string) => {
  const d: Array<Array<number>> = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0))
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
      }
    }
  }
  return d[a.length]![b.length]!
}

/** The closest known name, if it is close enough to be what was meant. */
export const closest = (word: string, names: ReadonlyArray<string>): string | undefined => {
  let best: { name: string; d: number } | undefined
  for (const name of names) {
    const d = name.startsWith(word) || word.startsWith(name) ? Math.min(1, distance(word, name)) : distance(word, name)
    if (best === undefined || d < best.d) best = { name, d }
  }
  return best !== undefined && best.d <= Math.max(2, Math.floor(best.name.length / 3)) ? best.name : undefined
}

/** Global options and the value they take, skipped when finding the command path. */
const GLOBAL_WITH_VALUE = new Set(["--socket"])
const GLOBAL_FLAGS = ["--json", "--socket", "--help", "-h"]

/** The option names a command's help lists: `-i, --interactive` gives -i and --interactive. */
export const optionNames = (help: CommandHelp): ReadonlyArray<string> =>
  help.options.flatMap((option) => option.flag.split(/,\s*/).map((part) => part.split(/[\s=]/)[0]!))

export type HelpAction =
  | { readonly _tag: "Help"; readonly text: string }
  | { readonly _tag: "Unknown"; readonly message: string }
  | { readonly _tag: "Run" }

/**
 * What the command line asks before @effect/cli parses it: help (for the
 * deepest command path named), an unknown command (with the closest one
 * suggested), or a command to run. Nothing past `--` is looked at.
 */
export const interpret = (args: ReadonlyArray<string>): HelpAction => {
  const end = args.indexOf("--")
  const head = end < 0 ? args : args.slice(0, end)
  const words: Array<string> = []
  let others = 0
  for (let i = 0; i < head.length; i++) {
    const arg = head[i]!
    if (GLOBAL_WITH_VALUE.has(arg)) i++
    else if (!arg.startsWith("-")) words.push(arg)
    else if (arg !== "--json") others++
  }
  const wantsHelp = head.includes("--help") || head.includes("-h") || words[0] === "help"
  if (words[0] === "help") words.shift()
  if (head.some((arg) => arg === "--version" || arg === "--completions" || arg.startsWith("--completions="))) {
    return { _tag: "Run" }
  }
  let path = ""
  for (const word of words) {
    const subcommands = subcommandsOf(path)
    if (subcommands.length === 0) break
    if (!subcommands.includes(word)) {
      const suggestion = closest(word, subcommands)
      const prefix = path === "" ? "" : `${path} `
      return {
        _tag: "Unknown",
        message: `unknown command \`${prefix}${word}\`${
          suggestion ? `: did you mean \`${prefix}${suggestion}\`?` : ""
        } (commands: ${subcommands.join(", ")}; see \`planter ${prefix}--help\`)`
      }
    }
    path = path === "" ? word : `${path} ${word}`
  }
  if (!wantsHelp) {
    const known = [...GLOBAL_FLAGS, ...optionNames(byPath.get(path)!)]
    for (const arg of head) {
      // A negative number is a value (`--offset -1` is refused by the command, with its own message).
      if (!arg.startsWith("-") || /^-\d/.test(arg)) continue
      const name = arg.split("=")[0]!
      if (known.includes(name)) continue
      const suggestion = closest(name, known)
      const command = path === "" ? "planter" : `planter ${path}`
      return {
        _tag: "Unknown",
        message: `unknown option ${name} for \`${command}\`${
          suggestion ? `: did you mean ${suggestion}?` : ""
        } (see \`${command} --help\`)`
      }
    }
  }
  if (wantsHelp || (words.length === 0 && others === 0)) {
    return { _tag: "Help", text: renderHelp(byPath.get(path)!) }
  }
  // `planter job` alone: its help, as a group has nothing to run.
  if (subcommandsOf(path).length > 0 && path !== "") return { _tag: "Help", text: renderHelp(byPath.get(path)!) }
  return { _tag: "Run" }
}
