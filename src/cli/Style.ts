import { Effect } from "effect"
import type { Console } from "effect"
/**
 * Colour only for a person: the stream is a terminal and NO_COLOR
 * (https://no-color.org) is unset or empty. Pipes and files get plain text.
 */
export const colourOn = (stream: NodeJS.WriteStream): boolean =>
  stream.isTTY === true && (process.env.NO_COLOR ?? "") === "" && process.env.TERM !== "dumb"

const codes = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const
export type Colour = keyof typeof codes

export const paint = (on: boolean, colour: Colour | null, text: string) =>
  on && colour !== null ? `\x1b[${codes[colour]}m${text}\x1b[0m` : text

/** Removes ANSI escape sequences, for text headed to a pipe. */
export const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "")

/** A console that strips ANSI codes from what goes to a stream that gets no colour (see colourOn). */
const plainConsole = (base: Console.Console): Console.Console => {
  const clean = (stream: NodeJS.WriteStream) => (args: ReadonlyArray<unknown>) =>
    colourOn(stream) ? args : args.map((arg) => (typeof arg === "string" ? stripAnsi(arg) : arg))
  const forOut = clean(process.stdout)
  const forErr = clean(process.stderr)
  return {
    ...base,
    log: (...args: ReadonlyArray<unknown>) => base.log(...forOut(args)),
    error: (...args: ReadonlyArray<unknown>) => base.error(...forErr(args)),
    unsafe: {
      ...base.unsafe,
      log: (...args: ReadonlyArray<unknown>) => base.unsafe.log(...forOut(args)),
      error: (...args: ReadonlyArray<unknown>) => base.unsafe.error(...forErr(args))
    }
  }
}

/** Runs `effect` (e.g. @effect/cli's parsing, which prints help and usage errors in ANSI) with a plain console off a terminal. */
export const withPlainConsole = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.consoleWith((base) => Effect.withConsole(effect, plainConsole(base)))
