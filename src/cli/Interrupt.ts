/**
 * Whether the person pressed Ctrl-C (SIGINT reached the CLI). The runtime
 * interrupts the command on SIGINT; a command's clean-up reads this to
 * tell a Ctrl-C from an interruption for another reason (the daemon's
 * connection closing), and acts only on a Ctrl-C.
 */
let received = false

export const watchSigint = () => {
  process.prependListener("SIGINT", () => {
    received = true
  })
}

export const sigintReceived = () => received
