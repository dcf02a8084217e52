import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real daemons and processes; two cores do not
    // take more than a couple of those at once without timing noise.
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ["default", "./test/support/totals-reporter.ts"]
  }
})
