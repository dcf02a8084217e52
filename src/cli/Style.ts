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
