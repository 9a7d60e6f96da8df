import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import socketClusterServer, { type AGServerSocket } from 'socketcluster-server';
import {
  Counter,
  Gauge,
  Histogram,
  clusterLinkOptions,
  joinCluster,
  listen,
  type ClusterLink,
  metricDefs,
  opsRequestHandler,
  sendJson,
  type Logger,
  type Registry,
} from '@socketbridge/common';
import type { WorkerConfig } from './config.js';
import { CLOSE_CODES } from './close-codes.js';
import { installDirectFanout } from './fanout.js';
import { Refusal, type HandshakeAuth, type WorkerHooks } from './hooks.js';

export interface WorkerServer {
  port: number;
  instanceId: string;
  drain: () => Promise<void>;
}

export async function startWorker(
  config: WorkerConfig,
  logger: Logger,
  registry: Registry,
  hooks: WorkerHooks = {},
): Promise<WorkerServer> {
  const instanceId = config.SOCKETBRIDGE_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomUUID()}`;
  const httpServer = createServer();
  // socketcluster-server verifies client JWTs itself with the shared key (HS256).
  const agServer = socketClusterServer.attach(httpServer, {
    allowClientPublish: true,
    authKey: config.SOCKETBRIDGE_AUTH_KEY,
    maxPayload: config.SOCKETBRIDGE_MAX_PAYLOAD_BYTES,
  });
  let draining = false;
  // Set once the port is known (the cluster announces it); ops routes answer before that.
  let link: ClusterLink | undefined = undefined;

  const handshakeRejections = new Counter({ ...metricDefs.handshakeRejections, registers: [registry] });
  const subscribeRejections = new Counter({ ...metricDefs.subscribeRejections, registers: [registry] });
  const publishRejections = new Counter({ ...metricDefs.publishRejections, registers: [registry] });
  const remaps = new Counter({ ...metricDefs.clusterRemaps, registers: [registry] });
  const evictions = new Counter({ ...metricDefs.evictions, registers: [registry] });
  const deliveries = new Counter({ ...metricDefs.deliveries, registers: [registry] });
  const publishToDelivery = new Histogram({ ...metricDefs.publishToDelivery, buckets: [...metricDefs.publishToDelivery.buckets], registers: [registry] });
  // Known label values start at 0, so dashboards show a flat line rather than "no data" before the first one.
  for (const reason of ['slow', 'draining']) evictions.inc({ reason }, 0);
  for (const reason of ['draining', 'no_token', 'bad_token', 'expired_token', 'bad_claims']) handshakeRejections.inc({ reason }, 0);
  for (const reason of ['bad_channel', 'no_policy', 'unauthenticated', 'not_owner']) subscribeRejections.inc({ reason }, 0);
  publishRejections.inc({ reason: 'client_publish' }, 0);
  new Gauge({ ...metricDefs.connections, registers: [registry], collect() { this.set(agServer.clientsCount); } });
  new Gauge({
    ...metricDefs.subscriptions,
    registers: [registry],
    collect() {
      let total = 0;
      for (const socket of Object.values(agServer.clients)) total += socket.subscriptions().length;
      this.set(total);
    },
  });
  new Gauge({ ...metricDefs.clusterBrokers, registers: [registry], collect() { this.set(link?.brokerURIs().length ?? 0); } });
  new Gauge({ ...metricDefs.clusterWorkers, registers: [registry], collect() { this.set(link?.workerURIs().length ?? 0); } });

  const refusalOf = (error: unknown): Refusal =>
    error instanceof Refusal ? error : new Refusal('internal', 'refused: the worker could not check this request');

  agServer.setMiddleware(agServer.MIDDLEWARE_HANDSHAKE, async (stream) => {
    for await (const action of stream) {
      if (action.type === action.HANDSHAKE_SC && action.socket) {
        if (draining) {
          handshakeRejections.inc({ reason: 'draining' });
          action.block(new Refusal('draining', 'this worker is shutting down: connect to another', 'DrainingError'));
          continue;
        }
        try {
          await hooks.handshake?.(action.socket, action.data as HandshakeAuth);
        } catch (error) {
          const refusal = refusalOf(error);
          handshakeRejections.inc({ reason: refusal.reason });
          action.block(refusal);
          continue;
        }
      }
      action.allow();
    }
  });
  agServer.setMiddleware(agServer.MIDDLEWARE_INBOUND, async (stream) => {
    for await (const action of stream) {
      try {
        if (action.type === action.SUBSCRIBE && action.socket && action.channel !== undefined) {
          await hooks.subscribe?.(action.socket, action.channel);
          // Acknowledge only once the channel's shard has us subscribed: from the client's ack on,
          // nothing published can miss it. (Later subscribers of the channel find it subscribed.)
          if (link && !agServer.brokerEngine.isSubscribed(action.channel)) {
            const channel = action.channel;
            await link.ensureSubscribed(channel, config.SOCKETBRIDGE_SUBSCRIBE_CONFIRM_TIMEOUT_MS);
            setTimeout(() => link?.releaseIfUnused(channel), 2000).unref();
          }
        } else if (action.type === action.PUBLISH_IN && action.socket && action.channel !== undefined) {
          if (!config.SOCKETBRIDGE_ALLOW_CLIENT_PUBLISH) {
            throw new Refusal('client_publish', 'clients may not publish: only the publisher does', 'PublishRefusedError');
          }
          await hooks.publish?.(action.socket, action.channel, action.data);
        }
      } catch (error) {
        const refusal = refusalOf(error);
        (action.type === action.SUBSCRIBE ? subscribeRejections : publishRejections).inc({ reason: refusal.reason });
        action.block(refusal);
        continue;
      }
      action.allow();
    }
  });

  installDirectFanout(agServer, (sockets, data) => {
    deliveries.inc(sockets);
    const ts = (data as { ts?: unknown } | null)?.ts;
    if (typeof ts === 'number') publishToDelivery.observe(Math.max(0, Date.now() - ts) / 1000);
  });
  void (async () => {
    for await (const { error } of agServer.listener('error')) logger.error({ err: error }, 'socketcluster server error');
  })();
  void (async () => {
    for await (const { socket } of agServer.listener('connection')) serveProcedures(socket);
  })();

  function serveProcedures(socket: AGServerSocket): void {
    for (const [name, handler] of Object.entries(hooks.procedures ?? {})) {
      void (async () => {
        for await (const request of socket.procedure(name)) {
          try {
            request.end(await handler(socket, request.data));
          } catch (error) {
            request.error(refusalOf(error));
          }
        }
      })();
    }
  }

  const handleOps = opsRequestHandler({
    registry,
    readiness: () =>
      draining
        ? { ready: false, reason: 'draining' }
        : link && link.brokerURIs().length > 0
          ? { ready: true }
          : { ready: false, reason: 'no broker mapping yet' },
    routes: {
      '/cluster': (_req, res) =>
        sendJson(res, 200, {
          instanceId,
          brokerURIs: link?.brokerURIs() ?? [],
          workerURIs: link?.workerURIs() ?? [],
          connections: agServer.clientsCount,
        }),
    },
  });
  httpServer.on('request', (req, res) => {
    if ((req.url ?? '').startsWith(agServer.getPath())) return;
    void handleOps(req, res);
  });

  const port = await listen(httpServer, config.SOCKETCLUSTER_PORT);
  link = joinCluster(agServer.brokerEngine, clusterLinkOptions(config, instanceId, port, logger), () => remaps.inc());

  // A client that stops reading makes its outbound buffer grow without bound; close it instead,
  // so one slow phone cannot take the worker's memory (and every other client) down with it.
  const slowCheck = setInterval(() => {
    for (const socket of Object.values(agServer.clients)) {
      const buffered = (socket.socket as { bufferedAmount?: number }).bufferedAmount ?? 0;
      if (buffered <= config.SOCKETBRIDGE_MAX_OUTBOUND_BYTES) continue;
      evictions.inc({ reason: 'slow' });
      logger.warn({ socketId: socket.id, buffered }, 'evicting a client that stopped reading');
      void socket.disconnect(CLOSE_CODES.slowClient, 'slow client: stopped reading');
      // The close frame queues behind the data it is not reading: drop the connection now.
      socket.terminate();
    }
  }, config.SOCKETBRIDGE_SLOW_CHECK_MS);
  slowCheck.unref();

  return {
    port,
    instanceId,
    async drain() {
      draining = true; // /readyz turns 503 and new handshakes are refused from here on
      await new Promise((resolve) => setTimeout(resolve, config.SOCKETBRIDGE_DRAIN_DELAY_MS));
      const sockets = Object.values(agServer.clients);
      const batches = Math.max(1, Math.ceil(config.SOCKETBRIDGE_DRAIN_SPREAD_MS / 100));
      const perBatch = Math.ceil(sockets.length / batches);
      logger.info({ clients: sockets.length, spreadMs: config.SOCKETBRIDGE_DRAIN_SPREAD_MS }, 'asking clients to reconnect elsewhere');
      for (let i = 0; i < sockets.length; i += perBatch) {
        for (const socket of sockets.slice(i, i + perBatch)) {
          evictions.inc({ reason: 'draining' });
          void socket.disconnect(CLOSE_CODES.draining, 'worker draining: reconnect');
        }
        if (i + perBatch < sockets.length) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      clearInterval(slowCheck);
      await agServer.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
