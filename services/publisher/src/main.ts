#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createRequire } from 'node:module';
import AGSimpleBroker from 'ag-simple-broker';
import { announceListening, clusterLinkOptions, connectRedis, createLogger, createRegistry, installShutdown, joinCluster, runMain, BridgeWatcher } from '@socketbridge/common';
import { buildApp } from './app.js';
import { loadPublisherConfig } from './config.js';
import { RabbitConsumer } from './consumer.js';
import { StreamOffsets } from './stream-offsets.js';
import { Pipeline } from './pipeline.js';
import { TokenIssuer } from './tokens.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

runMain('publisher', async () => {
  const config = loadPublisherConfig();
  const instanceId = `publisher-${hostname()}-${process.pid}-${randomUUID()}`;
  const logger = createLogger('publisher', config.SOCKETBRIDGE_LOG_LEVEL);
  const metrics = createRegistry('publisher');
  const redis = connectRedis(config.SOCKETBRIDGE_REDIS_URL, logger, 'socketbridge-publisher');

  // The publisher joins the cluster like a worker with no client sockets: a bare in-process broker
  // engine stands where socketcluster-server's would, and publishes go straight to the shards.
  // (Its cluster URI names the configured port; only workers' URIs are ever connected to.)
  const link = joinCluster(new AGSimpleBroker(), clusterLinkOptions(config, instanceId, config.SOCKETBRIDGE_PORT, logger));
  const pipeline = new Pipeline(redis, link, {
    retryDelayMs: config.SOCKETBRIDGE_REQUEUE_DELAY_MS,
    onRetry: (error) => logger.warn({ err: (error as Error).message }, 'could not publish: trying again, the channel\'s later messages waiting (SOCKETBRIDGE_PUBLISH_RETRY_MS)'),
  });
  let consumer: RabbitConsumer | undefined = undefined;
  const watcher = new BridgeWatcher(redis, logger, config.SOCKETBRIDGE_REGISTRY_RESYNC_MS, () => consumer?.bridgesChanged());
  consumer = new RabbitConsumer(config, logger, pipeline, watcher, metrics, instanceId, new StreamOffsets(redis));
  const tokens = new TokenIssuer(config.SOCKETBRIDGE_AUTH_KEY, config.SOCKETBRIDGE_TOKEN_TTL_SECONDS);
  const app = await buildApp({ config, logger, metrics, redis, tokens, consumer, pipeline, watcher, link, version });

  const address = await app.listen({ port: config.SOCKETBRIDGE_PORT, host: config.SOCKETBRIDGE_HOST });
  const port = Number(new URL(address).port);
  logger.info({ port, instanceId, consumeOnStart: config.SOCKETBRIDGE_CONSUME_ON_START, testMode: config.SOCKETBRIDGE_TEST_MODE }, 'listening');
  announceListening(port);
  if (config.SOCKETBRIDGE_CONSUME_ON_START) void consumer.start();

  installShutdown({
    logger,
    timeoutMs: config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS,
    drain: async () => {
      // Stop taking messages, let those in flight reach the cluster and be acked, then close. A
      // failed publish is not tried again meanwhile: its message goes back to RabbitMQ.
      pipeline.close();
      await consumer.stop(config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS - 2000);
      await pipeline.idle();
      await app.close();
      await watcher.close();
      redis.disconnect();
    },
  });
});
