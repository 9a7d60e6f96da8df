import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { URL } from 'node:url';
import socketClusterServer from 'socketcluster-server';
import {
  Counter,
  Gauge,
  SCC_PROTOCOL_VERSION,
  listen,
  metricDefs,
  opsRequestHandler,
  waitUntil,
  type Logger,
  type Registry,
} from '@socketbridge/common';
import type { BrokerConfig } from './config.js';
import { StateLink } from './state-link.js';

export interface BrokerServer {
  port: number;
  instanceId: string;
  /** The planned exit: leave, wait until no worker uses this shard, then close. */
  drain: () => Promise<{ waitedMs: number; timedOut: boolean }>;
  close: () => Promise<void>;
}

/**
 * A broker shard: a socketcluster-server whose only clients are cluster members (workers and
 * publishers). Its default in-memory broker fans each publish out to the members subscribed to
 * that channel, exactly as the upstream scc-broker does, so both kinds of shard mix in one cluster.
 */
export async function startBroker(config: BrokerConfig, logger: Logger, registry: Registry): Promise<BrokerServer> {
  const instanceId = randomUUID();
  const httpServer = createServer();
  const agServer = socketClusterServer.attach(httpServer, {
    socketChannelLimit: undefined,
    connectTimeout: config.SCC_BROKER_SERVER_CONNECT_TIMEOUT,
    ackTimeout: config.SCC_BROKER_SERVER_ACK_TIMEOUT,
  });
  let draining = false;
  let lastPublishAt = 0;

  const published = new Counter({ ...metricDefs.brokerPublishes, registers: [registry] });
  const refusals = new Counter({ ...metricDefs.handshakeRejections, registers: [registry] });
  refusals.inc({ reason: 'auth_key' }, 0);
  new Gauge({
    ...metricDefs.brokerConnections,
    registers: [registry],
    collect() {
      this.set(agServer.clientsCount);
    },
  });
  new Gauge({
    ...metricDefs.brokerSubscriptions,
    registers: [registry],
    collect() {
      this.set(agServer.brokerEngine.subscriptions().length);
    },
  });

  agServer.setMiddleware(agServer.MIDDLEWARE_HANDSHAKE, async (stream) => {
    for await (const action of stream) {
      if (action.type === action.HANDSHAKE_SC && action.socket && config.SCC_AUTH_KEY) {
        const query = new URL(action.socket.request.url ?? '/', 'http://broker.invalid').searchParams;
        if (query.get('authKey') !== config.SCC_AUTH_KEY) {
          refusals.inc({ reason: 'auth_key' });
          const error = new Error('Cannot connect to the cluster broker without a valid authKey query argument.');
          error.name = 'BadClusterAuthError';
          action.block(error);
          continue;
        }
      }
      action.allow();
    }
  });
  agServer.setMiddleware(agServer.MIDDLEWARE_INBOUND, async (stream) => {
    for await (const action of stream) {
      if (action.type === action.PUBLISH_IN) {
        // A cluster publish carries a batch of messages ({sender, messages}); count the messages.
        const messages = (action.data as { messages?: unknown } | undefined)?.messages;
        published.inc(Array.isArray(messages) ? messages.length : 1);
        lastPublishAt = Date.now();
      }
      action.allow();
    }
  });
  void (async () => {
    for await (const { error } of agServer.listener('error')) logger.error({ err: error }, 'socketcluster server error');
  })();

  const handleOps = opsRequestHandler({
    registry,
    readiness: () => (draining ? { ready: false, reason: 'draining' } : { ready: true }),
    routes: {
      '/health-check': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('OK');
      },
    },
  });
  httpServer.on('request', (req, res) => {
    if ((req.url ?? '').startsWith(agServer.getPath())) return;
    void handleOps(req, res);
  });

  const port = await listen(httpServer, config.SCC_BROKER_SERVER_PORT);
  const link = new StateLink({
    host: config.SCC_STATE_SERVER_HOST,
    port: config.SCC_STATE_SERVER_PORT,
    authKey: config.SCC_AUTH_KEY,
    instancePort: port,
    instanceType: 'scc-broker',
    version: SCC_PROTOCOL_VERSION,
    join: {
      instanceId,
      instanceIp: config.SCC_INSTANCE_IP ?? null,
      instanceIpFamily: config.SCC_INSTANCE_IP_FAMILY,
      instanceSecure: false,
    },
    retryDelayMs: config.SCC_BROKER_SERVER_RETRY_DELAY,
    connectTimeoutMs: config.SCC_STATE_SERVER_CONNECT_TIMEOUT,
    ackTimeoutMs: config.SCC_STATE_SERVER_ACK_TIMEOUT,
    logger,
  });

  async function close(): Promise<void> {
    link.socket.disconnect();
    await agServer.close();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  }

  return {
    port,
    instanceId,
    async drain() {
      draining = true;
      const started = Date.now();
      await link.leave();
      // Workers keep their subscriptions here until every publisher has switched to the new
      // mapping, then drop them: no subscriber left and no publish for a quiet spell means
      // nothing can still be routed through this shard.
      const done = await waitUntil(
        () =>
          agServer.brokerEngine.subscriptions().length === 0 && Date.now() - lastPublishAt >= config.SOCKETBRIDGE_DRAIN_QUIET_MS,
        config.SOCKETBRIDGE_DRAIN_TIMEOUT_MS,
      );
      const waitedMs = Date.now() - started;
      logger.info({ waitedMs, timedOut: !done }, 'drain finished');
      await close();
      return { waitedMs, timedOut: !done };
    },
    close,
  };
}
