import type { Reporter, TestModule } from "vitest/node"

/**
 * Prints the suite's totals as `N passed, N failed` on a line of their own,
 * the line CI reads to judge a run.
 */
export default class TotalsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>) {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") passed++
        else if (state === "failed") failed++
        else skipped++
      }
      // A file that failed to load has no tests but is still a failure.
      if (module.state() === "failed" && !module.children.size) failed++
    }
    const totals = `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`
    // Printed at exit so it is the very last line, after the default reporter's summary.
    process.once("exit", () => process.stdout.write(`\n${totals}\n`))
  }
}
