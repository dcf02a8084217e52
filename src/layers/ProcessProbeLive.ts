import { Effect, Layer } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import type { ProcessEntry } from "../services/ProcessProbe.js"
import { ProcessProbe } from "../services/ProcessProbe.js"

/**
 * Parses `/proc/<pid>/stat`. The command name sits in parentheses and may
 * itself contain spaces or parentheses, so fields are counted from the last `)`.
 */
export const parseProcStat = (text: string): ProcessEntry | undefined => {
  const open = text.indexOf("(")
  const close = text.lastIndexOf(")")
  if (open < 0 || close < 0) return undefined
  const pid = Number(text.slice(0, open).trim())
  const fields = text.slice(close + 2).split(" ")
  // fields[0] is field 3 (state); starttime is field 22.
  const state = fields[0]
  const ppid = Number(fields[1])
  const pgid = Number(fields[2])
  const startTime = fields[19]
  if (!Number.isInteger(pid) || state === undefined || startTime === undefined) return undefined
  return { pid, ppid, pgid, zombie: state === "Z" || state === "X", startTime }
}

const readProcEntry = (pid: number) =>
  Effect.promise(() =>
    fs.readFile(`/proc/${pid}/stat`, "utf8").then(parseProcStat, () => undefined)
  )

const linux = ProcessProbe.of({
  snapshot: Effect.promise(async () => {
    const names = await fs.readdir("/proc")
    const entries = await Promise.all(
      names.filter((name) => /^\d+$/.test(name)).map((name) =>
        fs.readFile(`/proc/${name}/stat`, "utf8").then(parseProcStat, () => undefined)
      )
    )
    return entries.filter((entry): entry is ProcessEntry => entry !== undefined)
  }).pipe(Effect.withSpan("ProcessProbe.snapshot")),
  entry: readProcEntry
})

/** Parses `ps -axo pid=,ppid=,pgid=,stat=,lstart=` lines (macOS and BSD). */
export const parsePsLine = (line: string): ProcessEntry | undefined => {
  const match = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.+?)\s*$/.exec(line)
  if (!match) return undefined
  return {
    pid: Number(match[1]),
    ppid: Number(match[2]),
    pgid: Number(match[3]),
    zombie: match[4]!.startsWith("Z"),
    startTime: match[5]!
  }
}

const ps = (args: ReadonlyArray<string>) =>
  Effect.async<ReadonlyArray<ProcessEntry>>((resume) => {
    execFile("ps", ["-o", "pid=,ppid=,pgid=,stat=,lstart=", ...args], (_error, stdout) => {
      resume(Effect.succeed(
        stdout.split("\n").map(parsePsLine).filter((entry): entry is ProcessEntry => entry !== undefined)
      ))
    })
  })

const ps_ = ProcessProbe.of({
  snapshot: ps(["-ax"]).pipe(Effect.withSpan("ProcessProbe.snapshot")),
  entry: (pid) => Effect.map(ps(["-p", String(pid)]), (entries) => entries[0])
})

export const layer = Layer.succeed(ProcessProbe, process.platform === "linux" ? linux : ps_)
