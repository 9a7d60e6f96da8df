#!/usr/bin/env node
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { announceListening, Counter, Revocations, RECOVER_OUTCOMES, findPolicy, waitUntil, withTimeout, RECOVER_PROCEDURE, connectRedis, createLogger, createRegistry, installShutdown, metricDefs, runMain, BridgeWatcher, parseRabbitUrls } from '@socketbridge/common';
import { accessHooks } from './access.js';
import { loadWorkerConfig } from './config.js';
import { recoverProcedure } from './recover.js';
import { LifecycleEvents } from './events.js';
import { Liveness } from './liveness.js';
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
    presence: (channel: string) => findPolicy(policies(), channel)?.policy.presence === true,
  };
  // Revoked tokens, in memory: loaded once Redis is ready, then kept current by the control channel.
  // Redis away at start is not fatal: the worker serves, loads when Redis comes, and revocations
  // made meanwhile arrive on the control channel anyway.
  const revocations = new Revocations();
  let revocationsLoaded = false;
  const loadRevocations = async () => {
    if (revocationsLoaded || redis.status !== 'ready') return;
    await withTimeout(revocations.load(redis), 5000, 'revocations from Redis').then(
      () => {
        revocationsLoaded = true;
        logger.info({ revocations: revocations.size }, 'revocations loaded');
      },
      (error: unknown) => logger.error({ err: error }, 'could not load revocations from Redis: retrying when it is ready again'),
    );
  };
  redis.on('ready', () => void loadRevocations());
  await waitUntil(() => redis.status === 'ready', 5000, 50);
  await loadRevocations();
  // Opt-in: without SOCKETBRIDGE_EVENTS_RABBITMQ_URL no event is made at all.
  const instanceId = config.SOCKETBRIDGE_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomUUID()}`;
  const events = config.SOCKETBRIDGE_EVENTS_RABBITMQ_URL
    ? new LifecycleEvents({
        urls: parseRabbitUrls(config.SOCKETBRIDGE_EVENTS_RABBITMQ_URL),
        connectTimeoutMs: config.SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS,
        exchange: config.SOCKETBRIDGE_EVENTS_EXCHANGE,
        queueLimit: config.SOCKETBRIDGE_EVENTS_QUEUE_LIMIT,
        maxInFlight: config.SOCKETBRIDGE_EVENTS_MAX_IN_FLIGHT,
        confirmTimeoutMs: config.SOCKETBRIDGE_EVENTS_CONFIRM_TIMEOUT_MS,
        reconnectMaxMs: config.SOCKETBRIDGE_EVENTS_RECONNECT_MAX_MS,
        instanceId,
        logger,
        registry: metrics,
      })
    : undefined;
  events?.start();
  const worker = await startWorker({ ...config, SOCKETBRIDGE_INSTANCE_ID: instanceId }, logger, metrics, hooks, revocations, events);
  logger.info({ port: worker.port, instanceId: worker.instanceId }, 'listening');
  announceListening(worker.port);
  const liveness = new Liveness({
    redis,
    instanceId: worker.instanceId,
    intervalMs: config.SOCKETBRIDGE_LIVENESS_INTERVAL_MS,
    canRenew: worker.controlSubscribed,
    onLive: worker.liveWorkers,
    logger,
  });
  liveness.start();
  installShutdown({
    logger,
    timeoutMs: config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS,
    drain: async () => {
      await worker.drain();
      // Only now, with every socket closed and its leaves sent: other workers would otherwise send
      // this worker's presence leaves for it as well (it would look dead), and the real ones after.
      await liveness.stop();
      // The drain's disconnects are events too: give them a moment to be confirmed.
      await events?.close(2000);
      await bridges.close();
      redis.disconnect();
    },
  });
});
