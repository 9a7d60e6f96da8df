import { defineConfig } from 'vitest/config';

// Tests start real processes (state server, brokers, workers) on a 2-core machine:
// one file at a time keeps them from starving each other, and timeouts bound every wait.
export default defineConfig({
  test: {
    include: ['services/*/test/**/*.test.ts', 'scripts/test/**/*.test.ts', 'operator/test/**/*.test.ts'],
    // Redis and RabbitMQ of the run's own: what else lives in the machine's never reaches a test.
    globalSetup: ['./vitest.global-setup.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
