import * as os from "node:os"

/**
 * Which stop signal reached the CLI, if one did: Ctrl-C (SIGINT) or a
 * SIGTERM (a CI runner cancelling, `kill`). The runtime interrupts the
 * command on either; a command's clean-up reads this to tell a stop asked
 * for from an interruption for another reason (the daemon's connection
 * closing), and acts only on the former.
 */
let received: "SIGINT" | "SIGTERM" | undefined

export const watchStopSignals = () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.prependListener(signal, () => {
      received ??= signal
    })
  }
}

export const stopSignalReceived = (): "SIGINT" | "SIGTERM" | undefined => received

/** The exit code for a command a stop signal ended, as shells report it: 130 for SIGINT, 143 for SIGTERM. */
export const stopSignalExitCode = (signal: "SIGINT" | "SIGTERM") => 128 + os.constants.signals[signal]
