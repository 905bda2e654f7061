import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'policy/**/*.test.ts'],
    // Hang guards, not speed limits: CI runs on a loaded 2-core machine (speed is `npm run bench`).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration files each start an sshd and a gateway; two at a time fits two cores.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
