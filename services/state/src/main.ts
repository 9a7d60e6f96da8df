#!/usr/bin/env node
import { announceListening, createLogger, createRegistry, installShutdown, runMain } from '@socketbridge/common';
import { loadStateConfig } from './config.js';
import { startStateServer } from './server.js';

runMain('state', async () => {
  const config = loadStateConfig();
  const logger = createLogger('state', config.SOCKETBRIDGE_LOG_LEVEL);
  const server = await startStateServer(config, logger, createRegistry('state'));
  logger.info(
    { port: server.port, startupDelayMs: config.SCC_STATE_SERVER_STARTUP_DELAY, authKey: Boolean(config.SCC_AUTH_KEY) },
    'listening',
  );
  announceListening(server.port);
  installShutdown({ logger, timeoutMs: config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS, drain: () => server.close() });
});
