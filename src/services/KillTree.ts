import { Duration, Effect } from "effect"
import { hotSpan } from "./HotSpan.js"
import type { JobTree, ProcessEntry } from "./ProcessProbe.js"
import { isRunning, ProcessProbe, treeView } from "./ProcessProbe.js"

export interface KillTreeOptions {
  /** SIGKILL at once instead of SIGTERM first. */
  readonly force: boolean
  /** How long members get to exit after SIGTERM before SIGKILL. */
  readonly grace: Duration.DurationInput
  /**
   * The leader is a sandbox launcher (bubblewrap) whose children are the
   * namespace's init. SIGTERM to either ends the namespace at once, every
   * process in it SIGKILLed, so the grace period's SIGTERM goes only to the
   * job's own processes inside; when the job's top process exits the init
   * exits too and the tree empties by itself.
   */
  readonly sandboxLauncher?: boolean
  /**
   * Also look for the job's processes by the marker in their environment
   * (unsandboxed jobs: a descendant that called setsid and lost its parent
   * is reachable no other way).
   */
  readonly markerJobId?: string
}

const send = (target: number, signal: NodeJS.Signals) => {
  try {
    process.kill(target, signal)
  } catch {
    // ESRCH: it exited between the snapshot and the signal.
  }
}

/**
 * Sends `signal` to every member, and to the leader's group only while the
 * same snapshot showed that group is still the job's (never a stranger's
 * that reused the pid). An already-gone process is not an error.
 */
const signalAll = (
  tree: JobTree,
  view: { readonly members: ReadonlyArray<ProcessEntry>; readonly groupIsJobs: boolean },
  signal: NodeJS.Signals
) =>
  Effect.sync(() => {
    if (view.groupIsJobs) send(-tree.leaderPid, signal)
    for (const member of view.members) send(member.pid, signal)
  })

/** SIGTERM to the job's own processes only: not the launcher, not the namespace's init (its children). */
const terminateInsideSandbox = (tree: JobTree, members: ReadonlyArray<ProcessEntry>) =>
  Effect.sync(() => {
    for (const member of members) {
      if (member.pid !== tree.leaderPid && member.ppid !== tree.leaderPid) send(member.pid, "SIGTERM")
    }
  })

/** One read of the process table, judged against the job's recorded identity. */
const look = (tree: JobTree) =>
  Effect.flatMap(ProcessProbe, (probe) => Effect.map(probe.snapshot, (snapshot) => treeView(snapshot, tree)))

/** Polls until the tree is empty, or `within` has passed; answers the last view. */
const awaitEmpty = (tree: JobTree, within: Duration.DurationInput) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    for (;;) {
      const view = yield* look(tree)
      if (view.members.length === 0 || Date.now() >= deadline) return view
      yield* Effect.sleep("5 millis")
    }
  })

/** True when no process is left in the leader's process group (signal 0 only asks). */
const groupIsEmpty = (leaderPid: number) => {
  try {
    process.kill(-leaderPid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

/** True when none of the members seen so far is still the same live process. */
const noneAlive = (tree: JobTree) =>
  Effect.flatMap(ProcessProbe, (probe) =>
    Effect.forEach(
      [[tree.leaderPid, tree.leaderStartTime] as const, ...tree.known],
      ([pid, startTime]) => Effect.map(probe.entry(pid), (entry) => isRunning(entry, startTime))
    ).pipe(Effect.map((alive) => !alive.includes(true))))

/**
 * Kills a job's whole process tree and returns once no member is left alive
 * (zombies count as dead: the kernel or init reaps them). Signals go to the
 * group and to each member found by walking descendants, because a shell's
 * `&` children and processes that left the group must die too. Every signal
 * follows a process-table read showing its target is still the job's
 * (pid + start time, or a descendant of such a process). Returns the pids
 * that had to be SIGKILLed.
 */
export const killTree = (tree: JobTree, options: KillTreeOptions): Effect.Effect<Array<number>, never, ProcessProbe> =>
  // The span Effect.fn would name, made as the other spans on a job's end are (HotSpan).
  sweepTree(tree, options).pipe(hotSpan("KillTree.killTree"))

const sweepTree = Effect.fnUntraced(function*(tree: JobTree, options: KillTreeOptions) {
  if (options.markerJobId !== undefined) {
    const probe = yield* ProcessProbe
    for (const marked of yield* probe.markedBy(options.markerJobId)) tree.known.set(marked.pid, marked.startTime)
  }
  // Fast path, the common case after a leader exits: an empty group and no
  // known member alive means nothing is left to find. Any process the full
  // scan could still reach descends from a live member of one or the other.
  if (groupIsEmpty(tree.leaderPid) && (yield* noneAlive(tree))) return []
  const view = yield* look(tree)
  yield* Effect.annotateCurrentSpan({ leaderPid: tree.leaderPid, members: view.members.length, force: options.force })
  if (view.members.length === 0) return []
  if (!options.force) {
    yield* options.sandboxLauncher ? terminateInsideSandbox(tree, view.members) : signalAll(tree, view, "SIGTERM")
    const afterGrace = yield* awaitEmpty(tree, options.grace)
    if (afterGrace.members.length === 0) return []
  }
  // SIGKILL can not be ignored; re-scan until empty so a child forked
  // between snapshot and signal is caught as well.
  let survivors = yield* look(tree)
  const killed = survivors.members.map((member) => member.pid)
  while (survivors.members.length > 0) {
    yield* signalAll(tree, survivors, "SIGKILL")
    survivors = yield* awaitEmpty(tree, "200 millis")
  }
  return killed
})
