import { Context, Effect } from "effect"

export interface ProcessEntry {
  readonly pid: number
  readonly ppid: number
  readonly pgid: number
  /** Finished but not yet reaped. A zombie holds no resources and counts as dead. */
  readonly zombie: boolean
  /** Opaque kernel start time; equal values mean the same process, not a reused pid. */
  readonly startTime: string
  /** Resident set size in bytes (Linux: stat field 24 × page size; macOS: ps rss), read in the same pass. */
  readonly rssBytes?: number
  /** CPU time used, user + system, in ms (Linux: stat fields 14 + 15 in clock ticks). */
  readonly cpuMs?: number
}

/** What one snapshot says of a job's tree: its live members' total RSS and CPU time, and how many they are. */
export interface TreeUsage {
  readonly rssBytes: number
  readonly cpuMs: number
  readonly processes: number
}

/** Sums the usage of live members (zombies hold no memory and are excluded by treeView). */
export const sumUsage = (members: ReadonlyArray<ProcessEntry>): TreeUsage => {
  let rssBytes = 0
  let cpuMs = 0
  for (const member of members) {
    rssBytes += member.rssBytes ?? 0
    cpuMs += member.cpuMs ?? 0
  }
  return { rssBytes, cpuMs, processes: members.length }
}

/**
 * Reads the machine's process table: `/proc` on Linux, a single `ps` call on
 * macOS. One snapshot per call, never one probe per process.
 */
export interface ProcessProbeShape {
  readonly snapshot: Effect.Effect<ReadonlyArray<ProcessEntry>>
  readonly entry: (pid: number) => Effect.Effect<ProcessEntry | undefined>
  /**
   * Processes whose environment carries `PLANTER_JOB_ID=<jobId>`: every
   * process of an unsandboxed job inherits it, so a descendant that left
   * the job's group and lost its parent is still found (unless it cleared
   * its environment). Linux only (/proc/<pid>/environ); empty elsewhere.
   */
  readonly markedBy: (jobId: string) => Effect.Effect<ReadonlyArray<ProcessEntry>>
}

/** The variable that marks every process of a job, and names the job to itself. */
export const JOB_MARKER_ENV = "PLANTER_JOB_ID"

export class ProcessProbe extends Context.Tag("planter/ProcessProbe")<ProcessProbe, ProcessProbeShape>() {}

/** True while `pid` is the very process started at `startTime` and has not finished. */
export const isRunning = (entry: ProcessEntry | undefined, startTime: string | null): boolean =>
  entry !== undefined && !entry.zombie && (startTime === null || entry.startTime === startTime)

/**
 * Members of a job's tree seen so far, by pid with their start time: a pid
 * counts again only while it is the very same process, never a reuse.
 */
export type KnownMembers = Map<number, string>

/** A job's tree as recorded: its leader's identity and the members seen so far. */
export interface JobTree {
  readonly leaderPid: number
  /** The leader's kernel start time, null for records that predate it (then the pid is trusted). */
  readonly leaderStartTime: string | null
  readonly known: KnownMembers
}

/** What one snapshot says about a job's tree, all decided from that same read. */
export interface TreeView {
  /** Live members (zombies excluded). */
  readonly members: Array<ProcessEntry>
  /**
   * The process group `leaderPid` is still the job's: the leader is the
   * recorded process, or no process holds that pid (Linux keeps a pid
   * unused while any process still has it as its group id, so a group
   * without its leader is still the job's). False when a stranger took the
   * pid: then the group is the stranger's and is never signalled.
   */
  readonly groupIsJobs: boolean
}

/**
 * A snapshot indexed by pid, parent and group, so that finding one job's
 * tree costs its members, not the whole process table: the monitor looks up
 * every running job's tree in the same snapshot each tick.
 */
export interface SnapshotIndex {
  readonly byPid: ReadonlyMap<number, ProcessEntry>
  readonly byParent: ReadonlyMap<number, ReadonlyArray<ProcessEntry>>
  readonly byGroup: ReadonlyMap<number, ReadonlyArray<ProcessEntry>>
}

const push = (map: Map<number, Array<ProcessEntry>>, key: number, entry: ProcessEntry) => {
  const list = map.get(key)
  if (list) list.push(entry)
  else map.set(key, [entry])
}

export const indexSnapshot = (snapshot: ReadonlyArray<ProcessEntry>): SnapshotIndex => {
  const byPid = new Map<number, ProcessEntry>()
  const byParent = new Map<number, Array<ProcessEntry>>()
  const byGroup = new Map<number, Array<ProcessEntry>>()
  for (const entry of snapshot) {
    byPid.set(entry.pid, entry)
    push(byParent, entry.ppid, entry)
    push(byGroup, entry.pgid, entry)
  }
  return { byPid, byParent, byGroup }
}

/**
 * The live members of a job's tree: its process group (which outlives the
 * leader) plus every descendant of a known member, which catches children
 * that moved to a group or session of their own while their parent lived.
 * Identity comes first: the leader counts only while it is the recorded
 * process (pid + start time), a known member only while its start time is
 * the one seen, so a reused pid is never taken for the job.
 * Adds what it finds to `known`, so a member orphaned later is still found,
 * and drops from it the members that have gone.
 */
export const treeView = (
  snapshot: ReadonlyArray<ProcessEntry> | SnapshotIndex,
  tree: JobTree
): TreeView => {
  const index = Array.isArray(snapshot) ? indexSnapshot(snapshot) : snapshot as SnapshotIndex
  const { known, leaderPid, leaderStartTime } = tree
  const leader = index.byPid.get(leaderPid)
  const leaderIsJobs = leader !== undefined && (leaderStartTime === null || leader.startTime === leaderStartTime)
  const groupIsJobs = leader === undefined || leaderIsJobs
  const members = new Map<number, ProcessEntry>()
  const queue: Array<number> = []
  const add = (entry: ProcessEntry) => {
    if (members.has(entry.pid)) return
    members.set(entry.pid, entry)
    queue.push(entry.pid)
  }
  if (leaderIsJobs) add(leader!)
  if (groupIsJobs) { for (const entry of index.byGroup.get(leaderPid) ?? []) add(entry) }
  for (const [pid, startTime] of known) {
    const entry = index.byPid.get(pid)
    // A member gone from the table never comes back (a reused pid has another start time): forget it, so a job
    // that forks for hours does not make every later look longer.
    if (entry !== undefined && entry.startTime === startTime) add(entry)
    else known.delete(pid)
  }
  while (queue.length > 0) {
    const pid = queue.pop()!
    for (const child of index.byParent.get(pid) ?? []) add(child)
  }
  const live: Array<ProcessEntry> = []
  for (const member of members.values()) {
    known.set(member.pid, member.startTime)
    if (!member.zombie) live.push(member)
  }
  return { members: live, groupIsJobs }
}

/** The live members of a job's tree; see `treeView`. */
export const treeMembers = (snapshot: ReadonlyArray<ProcessEntry>, tree: JobTree): Array<ProcessEntry> =>
  treeView(snapshot, tree).members
