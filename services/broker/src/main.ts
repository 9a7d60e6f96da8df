#!/usr/bin/env node
import { announceListening, createLogger, createRegistry, installShutdown, runMain } from '@socketbridge/common';
import { loadBrokerConfig } from './config.js';
import { startBroker } from './server.js';

runMain('broker', async () => {
  const config = loadBrokerConfig();
  const logger = createLogger('broker', config.SOCKETBRIDGE_LOG_LEVEL);
  const broker = await startBroker(config, logger.child({}), createRegistry('broker'));
  logger.info({ port: broker.port, instanceId: broker.instanceId }, 'listening');
  announceListening(broker.port);
  installShutdown({
    logger,
    timeoutMs: config.SOCKETBRIDGE_DRAIN_TIMEOUT_MS + 5000,
    drain: async () => {
      await broker.drain();
    },
  });
});
