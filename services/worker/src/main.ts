#!/usr/bin/env node
import { Counter, RECOVER_OUTCOMES, RECOVER_PROCEDURE, connectRedis, createLogger, createRegistry, installShutdown, metricDefs, runMain, BridgeWatcher } from '@socketbridge/common';
import { accessHooks } from './access.js';
import { loadWorkerConfig } from './config.js';
import { recoverProcedure } from './recover.js';
import { startWorker } from './server.js';

runMain('worker', async () => {
  const config = loadWorkerConfig();
  const logger = createLogger('worker', config.SOCKETBRIDGE_LOG_LEVEL);
  const metrics = createRegistry('worker');
  const redis = connectRedis(config.SOCKETBRIDGE_REDIS_URL, logger, 'socketbridge-worker');
  const bridges = new BridgeWatcher(redis, logger, config.SOCKETBRIDGE_REGISTRY_RESYNC_MS);
  const publicPolicies = config.SOCKETBRIDGE_PUBLIC_CHANNELS.map((pattern) => ({ pattern, access: 'public' as const }));
  const policies = () => [...bridges.policies(), ...publicPolicies];
  const recoveries = new Counter({ ...metricDefs.recoveries, registers: [metrics] });
  for (const outcome of RECOVER_OUTCOMES) recoveries.inc({ outcome }, 0);
  const hooks = {
    ...accessHooks({ requireAuth: config.SOCKETBRIDGE_REQUIRE_AUTH, policies }),
    procedures: { [RECOVER_PROCEDURE]: recoverProcedure(redis, policies, recoveries) },
  };
  const worker = await startWorker(config, logger, metrics, hooks);
  logger.info({ port: worker.port, instanceId: worker.instanceId }, 'listening');
  installShutdown({
    logger,
    timeoutMs: config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS,
    drain: async () => {
      await worker.drain();
      await bridges.close();
      redis.disconnect();
    },
  });
});
