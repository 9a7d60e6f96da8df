import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import AGSimpleBroker from 'ag-simple-broker';
import {
  CHANNEL_NAME,
  CLOSE_CODES,
  CONTROL_CHANNEL,
  Counter,
  REFUSAL_REASONS,
  Gauge,
  Histogram,
  SCC_PATH,
  SocketServer,
  TokenVerifier,
  clusterLinkOptions,
  createHardenedServer,
  installDirectFanout,
  type ClientSocket,
  joinCluster,
  listen,
  logSocketErrors,
  type ClusterLink,
  metricDefs,
  opsRequestHandler,
  parseControl,
  RESERVED_CHANNELS,
  Revocations,
  sendJson,
  type Logger,
  type Registry,
} from '@socketbridge/common';
import { claimsOf } from './access.js';
import type { WorkerConfig } from './config.js';
import { Refusal, type WorkerHooks } from './hooks.js';
import type { LifecycleEvents } from './events.js';
import { ChannelRoster, parsePresenceNotice } from './roster.js';

export interface WorkerServer {
  port: number;
  instanceId: string;
  /** Whether the control channel's shard confirmed this worker's subscription: it hears orders and queries. */
  controlSubscribed: () => boolean;
  /** The workers live now (liveness.ts reads them with each renewal of its entry): a dead one's presence joins leave. */
  liveWorkers: (live: ReadonlySet<string>) => void;
  drain: () => Promise<void>;
}

export async function startWorker(
  config: WorkerConfig,
  logger: Logger,
  registry: Registry,
  hooks: WorkerHooks = {},
  /** The server API's revocations (main.ts loads them from Redis); kept current by the control channel. */
  revocations: Revocations = new Revocations(),
  /** Lifecycle events (events.ts), when SOCKETBRIDGE_EVENTS_RABBITMQ_URL turns them on: `emit` never waits. */
  events?: Pick<LifecycleEvents, 'emit'>,
): Promise<WorkerServer> {
  const instanceId = config.SOCKETBRIDGE_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomUUID()}`;
  const httpServer = createHardenedServer();
  const broker = new AGSimpleBroker();
  let draining = false;
  /** Listed among the live workers (liveness.ts renews the entry and reports the live set through liveWorkers). */
  let listed = false;
  // Set once the port is known (the cluster announces it); ops routes answer before that.
  let link: ClusterLink | undefined = undefined;

  const handshakeRejections = new Counter({ ...metricDefs.handshakeRejections, registers: [registry] });
  const refreshRejections = new Counter({ ...metricDefs.refreshRejections, registers: [registry] });
  const subscribeRejections = new Counter({ ...metricDefs.subscribeRejections, registers: [registry] });
  const publishRejections = new Counter({ ...metricDefs.publishRejections, registers: [registry] });
  const remaps = new Counter({ ...metricDefs.clusterRemaps, registers: [registry] });
  const evictions = new Counter({ ...metricDefs.evictions, registers: [registry] });
  const deliveries = new Counter({ ...metricDefs.deliveries, registers: [registry] });
  const publishToDelivery = new Histogram({ ...metricDefs.publishToDelivery, buckets: [...metricDefs.publishToDelivery.buckets], registers: [registry] });
  // Known label values start at 0, so dashboards show a flat line rather than "no data" before the first one.
  for (const reason of REFUSAL_REASONS.eviction) evictions.inc({ reason }, 0);
  for (const reason of REFUSAL_REASONS.handshake) handshakeRejections.inc({ reason }, 0);
  for (const reason of REFUSAL_REASONS.refresh) refreshRejections.inc({ reason }, 0);
  for (const reason of REFUSAL_REASONS.subscribe) subscribeRejections.inc({ reason }, 0);
  for (const reason of REFUSAL_REASONS.publish) publishRejections.inc({ reason }, 0);

  const refusalOf = (error: unknown): Refusal =>
    error instanceof Refusal ? error : new Refusal('internal', 'refused: the worker could not check this request');
  /** Runs a hook; a refusal is counted under its reason and goes back to the client. */
  const gate = async (counter: Counter<'reason'>, check: () => unknown, onRefusal?: (refusal: Refusal) => void): Promise<void> => {
    try {
      await check();
    } catch (error) {
      const refusal = refusalOf(error);
      counter.inc({ reason: refusal.reason });
      onRefusal?.(refusal);
      throw refusal;
    }
  };
  const authFailure = (socket: ClientSocket, refusal: Refusal, token: Record<string, unknown> | null) =>
    events?.emit({ event: 'auth_failure', socketId: socket.id, clientId: claimsOf(token)?.sub ?? null, refusal: refusal.reason, error: refusal.name });
  // connect once per socket (onAuthenticated runs again at each #authenticate), and its disconnect with the close code.
  const connected = new WeakSet<ClientSocket>();
  const lifecycle = (socket: ClientSocket) => {
    if (!events || connected.has(socket)) return;
    connected.add(socket);
    const clientId = claimsOf(socket.authToken)?.sub ?? null;
    events.emit({ event: 'connect', socketId: socket.id, clientId });
    // After the socket server's own close handling (its unsubscribes come first, as they happened).
    socket.ws.once('close', (code: number, reason: Buffer) => {
      events.emit({ event: 'disconnect', socketId: socket.id, clientId: claimsOf(socket.authToken)?.sub ?? clientId, code, reason: reason.toString().slice(0, 200) });
    });
  };

  // Every open socket by the client its token names (`sub`), for the server API's disconnect.
  // A Map keyed by client input: a `sub` of `__proto__` is just another key.
  const byClient = new Map<string, Set<ClientSocket>>();
  const clientOf = new Map<ClientSocket, string>();
  const unindex = (socket: ClientSocket) => {
    const previous = clientOf.get(socket);
    if (previous === undefined) return;
    clientOf.delete(socket);
    const set = byClient.get(previous);
    set?.delete(socket);
    if (set?.size === 0) byClient.delete(previous);
  };
  const index = (socket: ClientSocket) => {
    const sub = claimsOf(socket.authToken)?.sub;
    if (sub === undefined || clientOf.get(socket) === sub) return;
    unindex(socket);
    clientOf.set(socket, sub);
    let set = byClient.get(sub);
    if (!set) byClient.set(sub, (set = new Set()));
    set.add(socket);
  };

  const refuseRevoked = (claims: Record<string, unknown> | null) => {
    if (revocations.isRevoked(claims)) throw new Refusal('revoked', 'the token was revoked: sign in again', 'AuthTokenInvalidError');
  };
  const pruning = setInterval(() => revocations.prune(), 60_000);
  pruning.unref();

  const presenceNotices = new Counter({ ...metricDefs.presenceNotices, registers: [registry] });
  for (const action of ['join', 'leave']) presenceNotices.inc({ action }, 0);
  // Who is subscribed here: channel info, presence, and the join and leave notices (never per message).
  const roster = new ChannelRoster({
    presence: (channel) => hooks.presence?.(channel) ?? false,
    holds: (socket, channel) => hooks.holds?.(socket, channel) ?? true,
    announce: (notice) => {
      presenceNotices.inc({ action: notice.action });
      link?.publish(RESERVED_CHANNELS.presence, [{ ...notice, worker: instanceId }]).catch((error: unknown) =>
        logger.warn({ err: error, channel: notice.channel }, 'a presence notice did not reach the cluster: other workers miss it'),
      );
    },
    changed: events
      ? (socket, channel, action, clientId) =>
          events.emit({ event: action === 'join' ? 'subscribe' : 'unsubscribe', socketId: socket.id, clientId: clientId ?? null, channel })
      : undefined,
  });

  const sockets = new SocketServer({
    onAuthenticated: (socket) => {
      index(socket);
      lifecycle(socket);
      roster.reauthenticated(socket);
    },
    onClosed: unindex,
    // A refused refresh: the gate's refusal, or the verifier's error (expired, bad signature…).
    onAuthRefused: (socket, error) => {
      const expired = (error as { name?: unknown }).name === 'AuthTokenExpiredError';
      const refusal = error instanceof Refusal ? error : new Refusal(expired ? 'expired_token' : 'bad_token', (error as Error).message, expired ? 'AuthTokenExpiredError' : 'AuthTokenInvalidError');
      refreshRejections.inc({ reason: refusal.reason });
      authFailure(socket, refusal, socket.authToken);
    },
    httpServer,
    path: SCC_PATH,
    authKey: config.SOCKETBRIDGE_AUTH_KEY,
    verifyToken: new TokenVerifier(new TextEncoder().encode(config.SOCKETBRIDGE_AUTH_KEY), config.SOCKETBRIDGE_JWT_ISSUERS, {
      cooldownMs: config.SOCKETBRIDGE_JWKS_COOLDOWN_MS,
      cacheMaxAgeMs: config.SOCKETBRIDGE_JWKS_CACHE_MAX_AGE_MS,
      maxStaleMs: config.SOCKETBRIDGE_JWKS_MAX_STALE_MS,
      timeoutMs: config.SOCKETBRIDGE_JWKS_TIMEOUT_MS,
    }).verify,
    maxPayload: config.SOCKETBRIDGE_MAX_PAYLOAD_BYTES,
    maxChannelsPerSocket: config.SOCKETBRIDGE_MAX_CHANNELS_PER_SOCKET,
    pingIntervalMs: config.SOCKETBRIDGE_PING_INTERVAL_MS,
    pingTimeoutMs: config.SOCKETBRIDGE_PING_TIMEOUT_MS,
    handshakeTimeoutMs: config.SOCKETBRIDGE_HANDSHAKE_TIMEOUT_MS,
    broker: roster.wrap(broker),
    onError: logSocketErrors(logger, 'client'),
    gates: {
      handshake: (socket, auth) =>
        gate(handshakeRejections, () => {
          if (draining) throw new Refusal('draining', 'this worker is shutting down: connect to another', 'DrainingError');
          refuseRevoked(auth.authToken);
          return hooks.handshake?.(socket, auth);
        }, (refusal) => authFailure(socket, refusal, auth.authToken)),
      subscribe: (socket, channel) =>
        gate(subscribeRejections, async () => {
          await hooks.subscribe?.(socket, channel);
          // Acknowledge only once the channel's shard has us subscribed: from the client's ack on,
          // nothing published can miss it. (Later subscribers of the channel find it subscribed.)
          if (link && !broker.isSubscribed(channel)) {
            await link.ensureSubscribed(channel, config.SOCKETBRIDGE_SUBSCRIBE_CONFIRM_TIMEOUT_MS);
            setTimeout(() => link?.releaseIfUnused(channel), 2000).unref();
          }
        }),
      publish: (socket, channel, data) =>
        gate(publishRejections, () => {
          if (!config.SOCKETBRIDGE_ALLOW_CLIENT_PUBLISH) {
            throw new Refusal('client_publish', 'clients may not publish: only the publisher does', 'PublishRefusedError');
          }
          // Reserved names (the control channel) are the cluster members' alone.
          if (!CHANNEL_NAME.test(channel)) {
            throw new Refusal('client_publish', 'clients may not publish on a reserved or malformed channel name', 'PublishRefusedError');
          }
          return hooks.publish?.(socket, channel, data);
        }),
      authenticate: async (socket, auth) => {
        try {
          refuseRevoked(auth.authToken);
          await hooks.authenticate?.(socket, auth);
        } catch (error) {
          throw refusalOf(error);
        }
      },
      holds: (socket, channel) => hooks.holds?.(socket, channel) ?? true,
      procedures: Object.fromEntries(
        Object.entries(hooks.procedures ?? {}).map(([name, handler]) => [
          name,
          async (socket: ClientSocket, data: unknown) => {
            try {
              return await handler(socket, data);
            } catch (error) {
              throw refusalOf(error);
            }
          },
        ]),
      ),
    },
  });

  new Gauge({ ...metricDefs.connections, registers: [registry], collect() { this.set(sockets.clientsCount); } });
  new Gauge({
    ...metricDefs.subscriptions,
    registers: [registry],
    collect() {
      let total = 0;
      for (const socket of sockets.clients.values()) total += socket.channels.size;
      this.set(total);
    },
  });
  new Gauge({ ...metricDefs.clusterBrokers, registers: [registry], collect() { this.set(link?.brokerURIs().length ?? 0); } });
  new Gauge({ ...metricDefs.clusterWorkers, registers: [registry], collect() { this.set(link?.workerURIs().length ?? 0); } });

  installDirectFanout(broker, (count, data) => {
    deliveries.inc(count);
    const ts = (data as { ts?: unknown } | null)?.ts;
    if (typeof ts === 'number') publishToDelivery.observe(Math.max(0, Date.now() - ts) / 1000);
  });

  const handleOps = opsRequestHandler({
    registry,
    opsKey: config.SOCKETBRIDGE_OPS_KEY,
    socketPath: SCC_PATH,
    // Ready once the cluster link is (cluster-link.ts, linkReadiness): its first clients' channels
    // are then heard on the shard every publisher sends them to.
    // And once it is listed among the live workers: publishers wait only for the listed workers'
    // answers to channel info and presence, so before that this worker's sockets would be left out.
    readiness: () => {
      if (draining) return { ready: false, reason: 'draining' };
      const linked = link?.readiness() ?? { ready: false, reason: 'no broker mapping yet' };
      return !linked.ready || listed ? linked : { ready: false, reason: 'not yet listed among the live workers in Redis' };
    },
    routes: {
      '/cluster': (_req, res) =>
        sendJson(res, 200, {
          instanceId,
          brokerURIs: link?.brokerURIs() ?? [],
          workerURIs: link?.workerURIs() ?? [],
          connections: sockets.clientsCount,
          controlSubscribed: link?.isSubscribed(CONTROL_CHANNEL) ?? false,
        }),
    },
  });
  httpServer.on('request', (req, res) => void handleOps(req, res));

  const port = await listen(httpServer, config.SOCKETCLUSTER_PORT, config.SOCKETBRIDGE_HOST);
  link = joinCluster(broker, clusterLinkOptions(config, instanceId, port, logger), () => remaps.inc());
  // The server API's orders (docs/security.md): only cluster members can publish on this channel.
  link.listen(CONTROL_CHANNEL, (data) => {
    const message = parseControl(data);
    if (!message) {
      logger.warn({ type: (data as { type?: unknown } | null)?.type }, 'ignoring a control message of an unknown type or shape');
      return;
    }
    if (message.type === 'query') {
      const reply = roster.answer(message, instanceId);
      link?.publish(message.replyTo, [reply]).catch((error: unknown) => logger.warn({ err: error, replyTo: message.replyTo }, 'could not answer a cluster query'));
      return;
    }
    if (message.type === 'revoke') {
      revocations.apply(message);
      // Open sockets of a revoked token close now, and do not reconnect with it.
      const candidates = 'clientId' in message ? [...(byClient.get(message.clientId) ?? [])] : [...sockets.clients.values()];
      let closed = 0;
      for (const socket of candidates) {
        if (!revocations.isRevoked(socket.authToken)) continue;
        closed++;
        socket.disconnect(CLOSE_CODES.disconnectedNoReconnect, 'disconnected by the server: the token was revoked');
      }
      logger.info({ jti: 'jti' in message ? message.jti : undefined, clientId: 'clientId' in message ? message.clientId : undefined, sockets: closed }, 'revoked tokens (server API)');
      return;
    }
    const open = [...(byClient.get(message.clientId) ?? [])];
    const code = message.reconnect ? CLOSE_CODES.disconnectedReconnect : CLOSE_CODES.disconnectedNoReconnect;
    for (const socket of open) socket.disconnect(code, message.reconnect ? 'disconnected by the server: reconnect' : 'disconnected by the server: do not reconnect');
    logger.info({ clientId: message.clientId, reconnect: message.reconnect, sockets: open.length }, 'disconnected a client (server API)');
  });

  // Other workers' presence notices, to this worker's subscribers of the channel (its own went out at once).
  link.listen(RESERVED_CHANNELS.presence, (data) => {
    const notice = parsePresenceNotice(data);
    if (notice) roster.received(notice, notice.worker);
    else logger.warn('ignoring a presence notice of an unknown shape');
  });

  // A client that stops reading makes its outbound buffer grow without bound; close it instead,
  // so one slow phone cannot take the worker's memory (and every other client) down with it.
  const slowCheck = setInterval(() => {
    for (const socket of sockets.clients.values()) {
      const buffered = socket.bufferedAmount;
      if (buffered <= config.SOCKETBRIDGE_MAX_OUTBOUND_BYTES) continue;
      evictions.inc({ reason: 'slow' });
      logger.warn({ socketId: socket.id, buffered }, 'evicting a client that stopped reading');
      socket.disconnect(CLOSE_CODES.slowClient, 'slow client: stopped reading');
      // The close frame queues behind the data it is not reading: drop the connection now.
      socket.terminate();
    }
  }, config.SOCKETBRIDGE_SLOW_CHECK_MS);
  slowCheck.unref();

  return {
    port,
    instanceId,
    controlSubscribed: () => link?.isSubscribed(CONTROL_CHANNEL) ?? false,
    liveWorkers: (live) => {
      if (live.has(instanceId)) listed = true; // latched, as the link's readiness: a Redis hiccup later empties no Service
      // A worker's entry lapses after 3 intervals: one heard from for longer and never live is gone too.
      const left = roster.liveWorkers(live, 3 * config.SOCKETBRIDGE_LIVENESS_INTERVAL_MS);
      if (left > 0) logger.info({ leaves: left }, 'sent the presence leaves of a worker that stopped renewing its liveness entry');
    },
    async drain() {
      draining = true; // /readyz turns 503 and new handshakes are refused from here on
      await new Promise((resolve) => setTimeout(resolve, config.SOCKETBRIDGE_DRAIN_DELAY_MS));
      const open = [...sockets.clients.values()];
      const batches = Math.max(1, Math.ceil(config.SOCKETBRIDGE_DRAIN_SPREAD_MS / 100));
      const perBatch = Math.ceil(open.length / batches);
      logger.info({ clients: open.length, spreadMs: config.SOCKETBRIDGE_DRAIN_SPREAD_MS }, 'asking clients to reconnect elsewhere');
      for (let i = 0; i < open.length; i += perBatch) {
        for (const socket of open.slice(i, i + perBatch)) {
          evictions.inc({ reason: 'draining' });
          socket.disconnect(CLOSE_CODES.draining, 'worker draining: reconnect');
        }
        if (i + perBatch < open.length) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      clearInterval(slowCheck);
      clearInterval(pruning);
      await sockets.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
