import { defineConfig } from 'vitest/config';

/**
 * The fast tier (`npm run test:unit`): tests that start no process and need no Redis, RabbitMQ or
 * browser, so no global setup. They run in parallel and take seconds; `npm test` runs them too,
 * with everything else (vitest.config.ts includes every test file).
 */
export default defineConfig({
  test: {
    include: [
      'services/*/test/unit/**/*.test.ts',
      // Pure tests that predate the tier and stay where their neighbours are.
      'services/common/test/config.test.ts',
      'services/state/test/membership.test.ts',
      'services/subscriber/test/units.test.ts',
      'services/client/test/ordering.test.ts',
    ],
    testTimeout: 10_000,
    reporters: ['default'],
  },
});
