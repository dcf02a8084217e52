import { Context, Effect } from "effect"

export interface ProcessEntry {
  readonly pid: number
  readonly ppid: number
  readonly pgid: number
  /** Finished but not yet reaped. A zombie holds no resources and counts as dead. */
  readonly zombie: boolean
  /** Opaque kernel start time; equal values mean the same process, not a reused pid. */
  readonly startTime: string
}

/**
 * Reads the machine's process table: `/proc` on Linux, a single `ps` call on
 * macOS. One snapshot per call, never one probe per process.
 */
export interface ProcessProbeShape {
  readonly snapshot: Effect.Effect<ReadonlyArray<ProcessEntry>>
  readonly entry: (pid: number) => Effect.Effect<ProcessEntry | undefined>
}

export class ProcessProbe extends Context.Tag("planter/ProcessProbe")<ProcessProbe, ProcessProbeShape>() {}

/** True while `pid` is the very process started at `startTime` and has not finished. */
export const isRunning = (entry: ProcessEntry | undefined, startTime: string | null): boolean =>
  entry !== undefined && !entry.zombie && (startTime === null || entry.startTime === startTime)

/**
 * Members of a job's tree seen so far, by pid with their start time: a pid
 * counts again only while it is the very same process, never a reuse.
 */
export type KnownMembers = Map<number, string>

/**
 * The live members of a job's tree: its process group (which outlives the
 * leader) plus every descendant of a known member, which catches children
 * that moved to a group or session of their own while their parent lived.
 * Adds what it finds to `known`, so a member orphaned later is still found.
 */
export const treeMembers = (
  snapshot: ReadonlyArray<ProcessEntry>,
  leaderPid: number,
  known: KnownMembers
): Array<ProcessEntry> => {
  const byParent = new Map<number, Array<ProcessEntry>>()
  for (const entry of snapshot) {
    const siblings = byParent.get(entry.ppid)
    if (siblings) siblings.push(entry)
    else byParent.set(entry.ppid, [entry])
  }
  const live = new Map(snapshot.map((entry) => [entry.pid, entry]))
  const members = new Map<number, ProcessEntry>()
  const queue: Array<number> = []
  for (const entry of snapshot) {
    if (entry.pgid === leaderPid || entry.pid === leaderPid || known.get(entry.pid) === entry.startTime) {
      members.set(entry.pid, entry)
      queue.push(entry.pid)
    }
  }
  while (queue.length > 0) {
    const pid = queue.pop()!
    for (const child of byParent.get(pid) ?? []) {
      if (!members.has(child.pid)) {
        members.set(child.pid, child)
        queue.push(child.pid)
      }
    }
  }
  for (const member of members.values()) known.set(member.pid, member.startTime)
  return [...members.values()].filter((entry) => !entry.zombie && live.has(entry.pid))
}
