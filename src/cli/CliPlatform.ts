import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Terminal from "@effect/platform/Terminal"
import { Context, Effect, Layer, Scope } from "effect"

/**
 * What @effect/cli asks of the platform, and no more: a FileSystem and a
 * Path (for `Options.directory`) and a Terminal (for its prompts).
 * NodeContext.layer would also build a CommandExecutor and a Worker
 * manager the CLI never uses, and NodeTerminal touches `process.stdin`
 * when it is built, which makes node open a stream on fd 0 (~2.5 ms of
 * every command's start-up) though only a prompt ever reads it. Here the
 * real NodeTerminal is made the first time something reads input or writes
 * a prompt, in this layer's scope; its size and kind come from stdout, as
 * NodeTerminal's do.
 */
export type CliPlatform = FileSystem.FileSystem | Path.Path | Terminal.Terminal

/**
 * FileSystem and Path hold no state and nothing to release, so they are
 * built once, when this module loads (for the CLI started from its startup
 * snapshot: when the snapshot is built), and a run provides the finished
 * services: building a layer per run (a memo map, a scope, a fiber per
 * merged layer) cost ~6 ms of a cold start.
 */
const stateless = Effect.runSync(Effect.scoped(Layer.build(Layer.merge(NodeFileSystem.layer, NodePath.layer))))

/** A Terminal whose NodeTerminal is made, in `scope`, the first time a prompt needs it. */
const lazyTerminal = (scope: Scope.Scope): Terminal.Terminal => {
  let made: Terminal.Terminal | undefined
  const real = Effect.suspend(() =>
    made !== undefined ? Effect.succeed(made) : Effect.tap(Scope.extend(NodeTerminal.make(), scope), (terminal) => {
      made = terminal
    })
  )
  return Terminal.Terminal.of({
    columns: Effect.sync(() => process.stdout.columns ?? 0),
    rows: Effect.sync(() => process.stdout.rows ?? 0),
    isTTY: Effect.sync(() => Boolean(process.stdout.isTTY)),
    readInput: Effect.flatMap(real, (terminal) => terminal.readInput),
    readLine: Effect.flatMap(real, (terminal) => terminal.readLine),
    display: (text) => Effect.flatMap(real, (terminal) => terminal.display(text))
  })
}

/** Provides the platform to a command; a Terminal made for a prompt is closed (raw mode off) when it ends. */
export const provide = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, CliPlatform>> =>
  Effect.scopedWith((scope) =>
    Effect.provide(effect, Context.add(stateless, Terminal.Terminal, lazyTerminal(scope)))
  ) as Effect.Effect<A, E, Exclude<R, CliPlatform>>
