import { Duration, Effect } from "effect"
import type { KnownMembers, ProcessEntry } from "./ProcessProbe.js"
import { isRunning, ProcessProbe, treeMembers } from "./ProcessProbe.js"

export interface KillTreeOptions {
  /** SIGKILL at once instead of SIGTERM first. */
  readonly force: boolean
  /** How long members get to exit after SIGTERM before SIGKILL. */
  readonly grace: Duration.DurationInput
  /** Members seen while the job ran, including any that have since left its group. */
  readonly known?: KnownMembers
  /**
   * The leader is a sandbox launcher (bubblewrap) whose children are the
   * namespace's init. SIGTERM to either ends the namespace at once, every
   * process in it SIGKILLed, so the grace period's SIGTERM goes only to the
   * job's own processes inside; when the job's top process exits the init
   * exits too and the tree empties by itself.
   */
  readonly sandboxLauncher?: boolean
}

const send = (target: number, signal: NodeJS.Signals) => {
  try {
    process.kill(target, signal)
  } catch {
    // ESRCH: it exited between the snapshot and the signal.
  }
}

/** Sends `signal` to the leader's group and to every member; an already-gone process is not an error. */
const signalAll = (leaderPid: number, members: ReadonlyArray<ProcessEntry>, signal: NodeJS.Signals) =>
  Effect.sync(() => {
    send(-leaderPid, signal)
    for (const member of members) send(member.pid, signal)
  })

/** SIGTERM to the job's own processes only: not the launcher, not the namespace's init (its children). */
const terminateInsideSandbox = (leaderPid: number, members: ReadonlyArray<ProcessEntry>) =>
  Effect.sync(() => {
    for (const member of members) {
      if (member.pid !== leaderPid && member.ppid !== leaderPid) send(member.pid, "SIGTERM")
    }
  })

/** Polls until the tree is empty, or `within` has passed; answers the members still alive. */
const awaitEmpty = (leaderPid: number, known: KnownMembers, within: Duration.DurationInput) =>
  Effect.gen(function*() {
    const probe = yield* ProcessProbe
    const deadline = Date.now() + Duration.toMillis(within)
    for (;;) {
      const members = treeMembers(yield* probe.snapshot, leaderPid, known)
      if (members.length === 0 || Date.now() >= deadline) return members
      yield* Effect.sleep("5 millis")
    }
  })

/** True when no process is left in the leader's process group. */
const groupIsEmpty = (leaderPid: number) => {
  try {
    process.kill(-leaderPid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

/** True when none of the members seen so far is still the same live process. */
const noneAlive = (known: KnownMembers) =>
  Effect.flatMap(ProcessProbe, (probe) =>
    Effect.forEach(known, ([pid, startTime]) => Effect.map(probe.entry(pid), (entry) => isRunning(entry, startTime))).pipe(
      Effect.map((alive) => !alive.includes(true))
    ))

/**
 * Kills a job's whole process tree and returns once no member is left alive
 * (zombies count as dead: the kernel or init reaps them). Signals go to the
 * group and to each member found by walking descendants, because a shell's
 * `&` children and processes that left the group must die too. Returns the
 * pids that had to be SIGKILLed.
 */
export const killTree = Effect.fn("KillTree.killTree")(function*(leaderPid: number, options: KillTreeOptions) {
  const probe = yield* ProcessProbe
  const known: KnownMembers = options.known ?? new Map()
  // Fast path, the common case after a leader exits: an empty group and no
  // known member alive means nothing is left to find. Any process the full
  // scan could still reach descends from a live member of one or the other.
  if (groupIsEmpty(leaderPid) && (yield* noneAlive(known))) return []
  const members = treeMembers(yield* probe.snapshot, leaderPid, known)
  yield* Effect.annotateCurrentSpan({ leaderPid, members: members.length, force: options.force })
  if (members.length === 0) return []
  if (!options.force) {
    yield* options.sandboxLauncher ? terminateInsideSandbox(leaderPid, members) : signalAll(leaderPid, members, "SIGTERM")
    const survivors = yield* awaitEmpty(leaderPid, known, options.grace)
    if (survivors.length === 0) return []
  }
  // SIGKILL can not be ignored; re-scan until empty so a child forked
  // between snapshot and signal is caught as well.
  let survivors = treeMembers(yield* probe.snapshot, leaderPid, known)
  const killed = survivors.map((member) => member.pid)
  while (survivors.length > 0) {
    yield* signalAll(leaderPid, survivors, "SIGKILL")
    survivors = yield* awaitEmpty(leaderPid, known, "200 millis")
  }
  return killed
})
