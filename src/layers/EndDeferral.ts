import { Effect } from "effect"

/**
 * How long a job's end bookkeeping may wait while starts are in progress. A burst of starts (50 pipelined `true`
 * jobs) has its jobs ending during it, and each end (the kill sweep with its /proc scan, the end's transaction,
 * the TMPDIR's clean-up, the waiters' answers) took the daemon's main thread between two starts: ~1 ms a job, a
 * quarter of the burst (docs/benchmarks.md, "Ends after the starts"). `run --wait`, `logs -f` and `events -f`
 * see an end at most this much later, and only while other jobs are starting: a tenth of a second, against the
 * 40 ms bound's ~20 ms less gain per 50 starts (A/B in the same doc).
 */
export const END_DEFERRAL_MAX_MS = 100

/**
 * When an end's bound runs out, the ends whose bounds run out within this long after that moment go with it:
 * their kill sweeps share one /proc pass (ProcessProbe.markedBy batches the searches of one turn), and a burst's
 * ends do not each set a timer.
 */
export const END_BATCH_SLACK_MS = 10

/**
 * Lets job ends wait for a quiet moment among job starts, never longer than `maxWaitMs` each. Starts mark
 * themselves with `starting`; an end calls `quiet` first, which answers at once when no start is in progress,
 * else when none has been for a whole turn of the event loop (a pipelining client's next start is often read
 * in that same turn), or when it has waited `maxWaitMs`. At a quiet moment every waiting end is let go at once,
 * so their kill sweeps share one /proc pass; while starts go on, an end goes when its own bound runs out (with
 * those whose bound runs out within END_BATCH_SLACK_MS), not with every end waiting then. Letting them all go at
 * the first one's bound put most of a long burst's ends (~40 of 50, ~1 ms each) back among its last starts
 * (docs/benchmarks.md, "The 50 starts: spans, ends by their own bound, …"). Holds only the ends waiting now:
 * nothing is kept once they go. `onQuiet` (if given) is called at each such quiet moment, after the waiting ends
 * are let go, whether any waited or not: work that should not compete with starts (TmpDirPool.fill) goes there.
 */
export const makeEndDeferral = (maxWaitMs: number = END_DEFERRAL_MAX_MS, onQuiet?: () => void) => {
  let inProgress = 0
  /** Oldest first: each end is added as it starts waiting, with when its bound runs out. */
  let waiting: Array<{ readonly resume: () => void; readonly due: number }> = []
  let deadline: ReturnType<typeof setTimeout> | undefined
  let check: ReturnType<typeof setImmediate> | undefined

  const release = (ends: ReadonlyArray<{ readonly resume: () => void }>) => {
    for (const end of ends) end.resume()
  }

  const releaseAll = () => {
    if (deadline !== undefined) clearTimeout(deadline)
    if (check !== undefined) clearImmediate(check)
    deadline = undefined
    check = undefined
    const released = waiting
    waiting = []
    release(released)
  }

  /** Lets go the ends whose bound has run out (or soon will), and waits for the next one's. */
  const releaseDue = () => {
    deadline = undefined
    const cutoff = performance.now() + END_BATCH_SLACK_MS
    const due = waiting.findIndex((end) => end.due > cutoff)
    const released = due < 0 ? waiting : waiting.slice(0, due)
    waiting = due < 0 ? [] : waiting.slice(due)
    armDeadline()
    release(released)
  }

  const armDeadline = () => {
    if (deadline === undefined && waiting.length > 0) {
      deadline = setTimeout(releaseDue, Math.max(0, waiting[0]!.due - performance.now()))
    }
  }

  const startEnded = () => {
    inProgress--
    if (inProgress === 0 && (waiting.length > 0 || onQuiet !== undefined) && check === undefined) {
      check = setImmediate(() => {
        check = undefined
        if (inProgress > 0) return
        releaseAll()
        onQuiet?.()
      })
    }
  }

  return {
    /** Runs a job's start, marking it in progress until it has answered (or failed). */
    starting: <A, E, R>(start: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.suspend(() => {
        inProgress++
        return Effect.ensuring(start, Effect.sync(startEnded))
      }),
    /** Whether a start is in progress now. */
    busy: (): boolean => inProgress > 0,
    /** Answers when the daemon is not starting jobs, or after at most `maxWaitMs`. */
    quiet: Effect.suspend(() =>
      inProgress === 0
        ? Effect.void
        : Effect.async<void>((resume) => {
          const end = { resume: () => resume(Effect.void), due: performance.now() + maxWaitMs }
          waiting.push(end)
          armDeadline()
          return Effect.sync(() => {
            waiting = waiting.filter((other) => other !== end)
            // No end left to wait for: no timer left to keep the process up.
            if (waiting.length === 0 && deadline !== undefined) {
              clearTimeout(deadline)
              deadline = undefined
            }
          })
        })
    )
  }
}

export type EndDeferral = ReturnType<typeof makeEndDeferral>
