#!/usr/bin/env node
import { connectRedis, createLogger, createRegistry, installShutdown, runMain, RegistryWatcher } from '@socketbridge/common';
import { accessHooks } from './access.js';
import { loadWorkerConfig } from './config.js';
import { startWorker } from './server.js';

runMain('worker', async () => {
  const config = loadWorkerConfig();
  const logger = createLogger('worker', config.SOCKETBRIDGE_LOG_LEVEL);
  const redis = connectRedis(config.SOCKETBRIDGE_REDIS_URL, logger, 'socketbridge-worker');
  const registry = new RegistryWatcher(redis, logger, config.SOCKETBRIDGE_REGISTRY_RESYNC_MS);
  const publicPolicies = config.SOCKETBRIDGE_PUBLIC_CHANNELS.map((pattern) => ({ pattern, access: 'public' as const }));
  const hooks = accessHooks({
    requireAuth: config.SOCKETBRIDGE_REQUIRE_AUTH,
    policies: () => [...registry.policies(), ...publicPolicies],
  });
  const worker = await startWorker(config, logger, createRegistry('worker'), hooks);
  logger.info({ port: worker.port, instanceId: worker.instanceId }, 'listening');
  installShutdown({
    logger,
    timeoutMs: config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS,
    drain: async () => {
      await worker.drain();
      await registry.close();
      redis.disconnect();
    },
  });
});
