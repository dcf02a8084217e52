/**
 * The entry of the CLI's V8 startup snapshot (dist/planter.snapshot.blob,
 * built by scripts/cli-snapshot.mjs). Building it loads every module of
 * the CLI (Effect, @effect/cli's command tree, the RPC schemas) and V8
 * saves the resulting heap; `planter` (dist/planter, a shell wrapper) then
 * starts node from that heap instead of compiling and evaluating ~2 MB of
 * JavaScript on every command.
 *
 * Only module loading and the warm-up happen at build time (src/cli/WarmUp.ts:
 * the common commands' code runs once, so the snapshot holds it compiled).
 * Anything a run depends on (argv, env, cwd, stdout's kind, signals, random
 * seeds) is read inside runPlanter, which the deserialized process calls.
 */
import * as v8 from "node:v8"
import { runPlanter } from "./Main.js"
import { warmUp } from "./WarmUp.js"

v8.startupSnapshot.setDeserializeMainFunction(() => {
  // node puts the arguments after `--snapshot-blob FILE --` right after its
  // own path; a script-started CLI has its script there, so keep that shape.
  process.argv.splice(1, 0, "planter")
  runPlanter(process.argv)
})

// node takes the snapshot once the event loop is empty, so the warm-up's I/O finishes first. A warm-up that
// fails (say, no writable temporary dir) leaves a snapshot that runs the same, only less compiled; the
// unit test test/unit/WarmUp.test.ts keeps it working.
warmUp().catch(() => {})
