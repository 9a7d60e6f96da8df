#!/usr/bin/env node
// The SocketBridge operator: reconciles SocketBridge resources while it holds the leader Lease.
import { createServer } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { connectRedis, createLogger, createRegistry, installShutdown, listen, opsRequestHandler, runMain } from '@socketbridge/common';
import { loadOperatorConfig } from './config.js';
import { Controller, createControllerMetrics } from './controller.js';
import { EventRecorder } from './events.js';
import { KubeApi } from './kube.js';
import { LeaderElector } from './leader.js';
import { Reconciler } from './reconciler.js';

const COMPONENT = 'socketbridge-operator';

runMain(COMPONENT, async () => {
  const config = loadOperatorConfig();
  const logger = createLogger(COMPONENT, config.SOCKETBRIDGE_LOG_LEVEL, { instanceId: config.identity });
  // KUBECONFIG when set (local development, tests), else the pod's service account.
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const api = new KubeApi(kubeConfig);
  const redis = connectRedis(config.SOCKETBRIDGE_REDIS_URL, logger, COMPONENT);
  const reconciler = new Reconciler(redis, logger, { timeoutMs: config.SOCKETBRIDGE_RECONCILE_TIMEOUT_MS, connectionName: `${COMPONENT} ${config.identity}` });
  const recorder = new EventRecorder(api, COMPONENT, config.identity, logger);

  // Writes to socketbridges and Events go out only while this replica holds a renewed Lease.
  api.fence = () => elector.mayWrite;
  let shuttingDown = false;
  let controller: Controller | undefined;
  // Leadership changes one at a time: a controller is fully stopped before another starts.
  let transition = Promise.resolve();
  const registry = createRegistry('operator');
  const metrics = createControllerMetrics(registry, { controller: () => controller, leader: () => elector.isLeader });
  const elector = new LeaderElector(
    api,
    {
      namespace: config.leaseNamespace,
      name: config.SOCKETBRIDGE_LEASE_NAME,
      identity: config.identity,
      leaseDurationMs: config.SOCKETBRIDGE_LEASE_DURATION_MS,
      renewDeadlineMs: config.SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS,
      retryPeriodMs: config.SOCKETBRIDGE_LEASE_RETRY_MS,
    },
    logger,
    {
      onStartedLeading: () => {
        transition = transition.then(() => {
          controller = new Controller(api, reconciler, recorder, logger, metrics, {
            ...(config.SOCKETBRIDGE_OPERATOR_NAMESPACE ? { namespace: config.SOCKETBRIDGE_OPERATOR_NAMESPACE } : {}),
            ...(config.SOCKETBRIDGE_RABBITMQ_URL ? { fallbackRabbitUrl: config.SOCKETBRIDGE_RABBITMQ_URL } : {}),
            workers: config.SOCKETBRIDGE_WORKERS,
            resyncMs: config.SOCKETBRIDGE_RESYNC_MS,
            relistMs: config.SOCKETBRIDGE_RELIST_MS,
            watchTimeoutSeconds: config.SOCKETBRIDGE_WATCH_TIMEOUT_SECONDS,
            watchIdleMs: config.SOCKETBRIDGE_WATCH_IDLE_MS,
            backoffBaseMs: config.SOCKETBRIDGE_BACKOFF_BASE_MS,
            backoffMaxMs: config.SOCKETBRIDGE_BACKOFF_MAX_MS,
          });
          controller.start();
        });
        return transition;
      },
      onStoppedLeading: () => {
        if (!shuttingDown) {
          // As controller-runtime does: a replica that lost the Lease exits at once, so nothing it
          // had in flight (API, RabbitMQ or Redis writes) runs on while another replica leads.
          logger.fatal({ lease: `${config.leaseNamespace}/${config.SOCKETBRIDGE_LEASE_NAME}` }, 'leader election lost: exiting');
          process.exit(1);
        }
        transition = transition.then(async () => {
          await controller?.stop();
          controller = undefined;
        });
        return transition;
      },
    },
  );

  const readiness = () => {
    if (!elector.hasContact) return { ready: false, reason: 'the Kubernetes API has not answered yet' };
    if (elector.isLeader && !controller?.synced) return { ready: false, reason: 'leading, but socketbridges are not listed yet' };
    return { ready: true };
  };
  const server = createServer(
    opsRequestHandler({
      registry,
      readiness,
      routes: {
        '/leader': async (_req, res) => {
          const body = JSON.stringify({ identity: config.identity, leader: elector.isLeader, holder: elector.holder ?? null });
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
          res.end(body);
        },
      },
    }),
  );
  const port = await listen(server, config.SOCKETBRIDGE_OPERATOR_PORT);
  logger.info(
    {
      port,
      identity: config.identity,
      namespace: config.SOCKETBRIDGE_OPERATOR_NAMESPACE ?? '(all)',
      lease: `${config.leaseNamespace}/${config.SOCKETBRIDGE_LEASE_NAME}`,
      cluster: kubeConfig.getCurrentCluster()?.server,
    },
    'listening',
  );
  elector.run();

  installShutdown({
    logger,
    timeoutMs: config.SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS,
    drain: async () => {
      // Stop reconciling (in-flight reconciles finish), then hand the lease over at once.
      shuttingDown = true;
      await elector.stop(true);
      await transition;
      server.close();
      redis.disconnect();
    },
  });
});
