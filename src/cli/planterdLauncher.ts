#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=20
/**
 * The `planterd` bin (dist/planterd.mjs): tunes glibc's allocator, then
 * loads the daemon itself (the bundle dist/planterd-daemon.mjs).
 *
 * The tuning has to come first, in a module of its own: the arena limit
 * only binds threads that have not allocated yet, and while node parses
 * and runs the 1.7 MB bundle, V8's worker threads already allocate, each in
 * an arena of its own (6 arenas when the bundle tuned malloc itself, 2 from
 * here; see MallocTuning.ts and docs/benchmarks.md, "Daemon memory").
 */
import { tuneMalloc } from "../layers/MallocTuning.js"

tuneMalloc()
await import(new URL("./planterd-daemon.mjs", import.meta.url).href)
