import * as Command from "@effect/cli/Command"
import { Effect } from "effect"
import type { FiberInfo } from "../rpc/Models.js"
import { withClient } from "./Global.js"
import { printJson, printLine } from "./Output.js"

/** What a fiber is, from its labels: `job job-…`, `connection pid 42 uid 0`, `follower LogsRead job-…`, `monitor`. */
export const describeFiber = (fiber: FiberInfo): string => {
  const labels = fiber.labels
  const kind = labels["planter.fiber"]
  if (kind === undefined) return "-"
  const parts = [kind]
  if (labels["planter.rpc"] !== undefined) parts.push(labels["planter.rpc"])
  if (labels["planter.job.id"] !== undefined) parts.push(labels["planter.job.id"])
  else if (labels["planter.cell.id"] !== undefined) parts.push(labels["planter.cell.id"])
  if (labels["planter.peer.pid"] !== undefined) parts.push(`pid ${labels["planter.peer.pid"]}`)
  if (labels["planter.peer.uid"] !== undefined) parts.push(`uid ${labels["planter.peer.uid"]}`)
  return parts.join(" ")
}

const duration = (
  ms: number
) => (ms < 1000
  ? `${ms}ms`
  : ms < 60_000
  ? `${(ms / 1000).toFixed(1)}s`
  : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`)

/**
 * The fibers as a tree (each under the fiber that forked it), one line each:
 * id, status, what it is, and its current span with how long it has been in it.
 * Only labelled fibers and their ancestors are shown unless --all.
 */
export const renderTree = (fibers: ReadonlyArray<FiberInfo>, all: boolean): Array<string> => {
  const byId = new Map(fibers.map((fiber) => [fiber.id, fiber]))
  const children = new Map<number | null, Array<FiberInfo>>()
  for (const fiber of fibers) {
    const parent = fiber.parent_id !== null && byId.has(fiber.parent_id) ? fiber.parent_id : null
    children.set(parent, [...(children.get(parent) ?? []), fiber])
  }
  // A fiber is worth a line when it or one of its descendants is labelled.
  const shown = new Set<number>()
  const mark = (fiber: FiberInfo): boolean => {
    let keep = all || fiber.labels["planter.fiber"] !== undefined
    for (const child of children.get(fiber.id) ?? []) keep = mark(child) || keep
    if (keep) shown.add(fiber.id)
    return keep
  }
  for (const root of children.get(null) ?? []) mark(root)
  const lines: Array<string> = []
  const walk = (fiber: FiberInfo, depth: number) => {
    if (!shown.has(fiber.id)) return
    const waiting = fiber.blocked_on.length > 0 ? ` on #${fiber.blocked_on.join(",#")}` : ""
    const span = fiber.span === null ? "" : `  in ${fiber.span} for ${duration(fiber.span_ms ?? 0)}`
    lines.push(`${"  ".repeat(depth)}#${fiber.id} ${fiber.status}${waiting}  ${describeFiber(fiber)}${span}`)
    for (const child of children.get(fiber.id) ?? []) walk(child, depth + 1)
  }
  for (const root of children.get(null) ?? []) walk(root, 0)
  return lines
}

const fibers = Command.make("fibers", {}, () =>
  withClient((client, json) =>
    Effect.gen(function*() {
      const list = yield* client.DebugFibers()
      if (json) return yield* printJson({ fibers: list.map((fiber) => ({ ...fiber })) })
      const lines = renderTree(list, false)
      for (const line of lines) yield* printLine(line)
      yield* printLine(`${list.length} live fiber(s), ${lines.length} shown (labelled ones and their parents)`)
    })
  )).pipe(
    Command.withDescription(
      "List the daemon's live fibers as a tree: jobs, connections, followers, the monitor, and the span each is in (admin only)"
    )
  )

export const debugCommand = Command.make("debug").pipe(
  Command.withDescription("Look inside the running daemon"),
  Command.withSubcommands([fibers])
)
