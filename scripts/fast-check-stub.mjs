// Stands in for fast-check in the CLI's snapshot bundle (scripts/cli-snapshot.mjs): effect/Schema imports it
// for test arbitraries only, which the CLI never builds.
export {}
