import { randomUUID } from 'node:crypto';
import AGSimpleBroker from 'ag-simple-broker';
import {
  Counter,
  Gauge,
  SCC_PROTOCOL_VERSION,
  SCC_PATH,
  SocketServer,
  clusterAuthRefusal,
  createHardenedServer,
  installDirectFanout,
  listen,
  logSocketErrors,
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
 * A broker shard: serves cluster members (workers and publishers, through scc-broker-client) the
 * SocketCluster protocol, and fans each publish out to the members subscribed to its channel, as
 * the upstream scc-broker does, so both kinds of shard mix in one cluster. It runs the same
 * protocol layer as the workers rather than socketcluster-server: a publish crosses it without a
 * middleware pass or a per-socket stream, and leaves each member as one pre-built frame.
 */
export async function startBroker(config: BrokerConfig, logger: Logger, registry: Registry): Promise<BrokerServer> {
  const instanceId = randomUUID();
  const httpServer = createHardenedServer();
  const broker = new AGSimpleBroker();
  let draining = false;
  let lastPublishAt = 0;

  const published = new Counter({ ...metricDefs.brokerPublishes, registers: [registry] });
  const refusals = new Counter({ ...metricDefs.handshakeRejections, registers: [registry] });
  refusals.inc({ reason: 'auth_key' }, 0);

  const sockets = new SocketServer({
    httpServer,
    path: SCC_PATH,
    // Members carry no client JWTs; the key only has to be one the token check accepts.
    authKey: randomUUID(),
    maxPayload: config.SOCKETBRIDGE_MAX_PAYLOAD_BYTES,
    pingIntervalMs: config.SOCKETBRIDGE_PING_INTERVAL_MS,
    pingTimeoutMs: config.SOCKETBRIDGE_PING_TIMEOUT_MS,
    handshakeTimeoutMs: config.SCC_BROKER_SERVER_CONNECT_TIMEOUT,
    broker,
    onError: logSocketErrors(logger, 'member'),
    gates: {
      // Refused at the upgrade: without the key nobody subscribes to a client's channel or forges a publish.
      connection(request) {
        const refusal = clusterAuthRefusal(request, config.SCC_AUTH_KEY);
        if (refusal) refusals.inc({ reason: 'auth_key' });
        return refusal;
      },
      handshake: () => undefined,
      subscribe: () => undefined,
      publish(_socket, _channel, data) {
        // A cluster publish carries a batch of messages ({sender, messages}); count the messages.
        const messages = (data as { messages?: unknown } | undefined)?.messages;
        published.inc(Array.isArray(messages) ? messages.length : 1);
        lastPublishAt = Date.now();
      },
      procedures: {},
    },
  });
  installDirectFanout(broker);

  new Gauge({
    ...metricDefs.brokerConnections,
    registers: [registry],
    collect() {
      this.set(sockets.clientsCount);
    },
  });
  new Gauge({
    ...metricDefs.brokerSubscriptions,
    registers: [registry],
    collect() {
      this.set(broker.subscriptions().length);
    },
  });

  const handleOps = opsRequestHandler({
    registry,
    opsKey: config.SOCKETBRIDGE_OPS_KEY,
    socketPath: SCC_PATH,
    readiness: () => (draining ? { ready: false, reason: 'draining' } : { ready: true }),
    openRoutes: {
      '/health-check': (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('OK');
      },
    },
  });
  httpServer.on('request', (req, res) => void handleOps(req, res));

  const port = await listen(httpServer, config.SCC_BROKER_SERVER_PORT, config.SOCKETBRIDGE_HOST);
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
    await sockets.close();
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
          broker.subscriptions().length === 0 && Date.now() - lastPublishAt >= config.SOCKETBRIDGE_DRAIN_QUIET_MS,
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
