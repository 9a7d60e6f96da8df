#!/usr/bin/env node
import { createLogger, createRegistry, installShutdown, runMain } from '@socketbridge/common';
import { loadWorkerConfig } from './config.js';
import { startWorker } from './server.js';

runMain('worker', async () => {
  const config = loadWorkerConfig();
  const logger = createLogger('worker', config.SOCKETBRIDGE_LOG_LEVEL);
  const worker = await startWorker(config, logger, createRegistry('worker'));
  logger.info({ port: worker.port, instanceId: worker.instanceId }, 'listening');
  installShutdown({ logger, timeoutMs: config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS, drain: () => worker.drain() });
});
