import { connect as connectTls } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/**
 * A connection the services use: one node (or Sentinel's master) or a Redis Cluster. Both share
 * ioredis's command interface, so code that only sends commands takes either.
 */
export type RedisClient = Redis | Cluster;

/**
 * Where a service finds Redis: one node by URL, the master Sentinel names, or a Redis Cluster's seed
 * nodes (docs/scaling.md). `tls`: every connection of the topology (to the sentinels, the master,
 * each cluster node) is TLS, verified against the system CAs and NODE_EXTRA_CA_CERTS.
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | {
      kind: 'sentinel';
      tls: boolean;
      sentinels: Array<{ host: string; port: number }>;
      name: string;
      db: number;
      /** The master's (and its replicas') credentials. */
      username?: string;
      password?: string;
      /** The sentinels' own, when they require one (Sentinel's requirepass): the URL's query. */
      sentinelUsername?: string;
      sentinelPassword?: string;
    }
  | { kind: 'cluster'; tls: boolean; nodes: Array<{ host: string; port: number }>; username?: string; password?: string };

const SENTINEL_URL = /^(rediss?)\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/@?]+)\/([^/?#]+)(?:\/(\d+))?\/?(?:\?([^#]*))?$/;
/** What a Sentinel URL's query may say: the sentinels' own credentials. */
const SENTINEL_PARAMS = ['sentinelUsername', 'sentinelPassword'] as const;
// No /<db>: a Redis Cluster has database 0 only.
const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/@]+)\/?$/;
const FORMS =
  'redis://host:port[/db], rediss://…, redis+sentinel://host:port,host:port/<masterName>[/<db>][?sentinelPassword=…], rediss+sentinel://…, redis+cluster://host:port,host:port or rediss+cluster://…';

/** host[:port] list of a Sentinel or Cluster URL; `what` names the entries in the error. */
function addresses(hosts: string, defaultPort: number, what: string): Array<{ host: string; port: number }> {
  return hosts.split(',').map((entry) => {
    const at = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    const port = Number(at?.[2] ?? defaultPort);
    if (!at || port < 1 || port > 65535) throw new Error(`${what} address ${JSON.stringify(entry)} is not host[:port]`);
    return { host: at[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

/**
 * Reads SOCKETBRIDGE_REDIS_URL: `redis://` or `rediss://` for one node, or
 * `redis+sentinel://[[user]:password@]host:port[,host:port…]/<masterName>[/<db>][?sentinelPassword=…[&sentinelUsername=…]]`
 * for a master that Sentinel watches (the password is the master's; the query's, percent-encoded,
 * the sentinels' own when they require one: docs/configuration.md),
 * or `redis+cluster://[[user]:password@]host:port[,host:port…]` for a Redis Cluster (seed nodes: the
 * client learns the rest and the slot map from any one that answers). `rediss+sentinel://` and
 * `rediss+cluster://` are the same over TLS.
 * Throws a sentence naming the accepted forms, so a typo stops the service at start rather than
 * leaving it retrying against nothing.
 */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\//.test(url)) return { kind: 'single', url };
  if (/^rediss?\+cluster:\/\//.test(url)) {
    const cluster = CLUSTER_URL.exec(url);
    if (!cluster) throw new Error('a Cluster URL is redis[s]+cluster://[[user]:password@]host:port[,host:port…] (no /<db>: a cluster has database 0 only)');
    const [, scheme, user, password, hosts] = cluster as unknown as [string, string, string | undefined, string | undefined, string];
    return {
      kind: 'cluster',
      tls: scheme === 'rediss',
      nodes: addresses(hosts, 6379, 'Cluster node'),
      ...(user ? { username: decodeURIComponent(user) } : {}),
      ...(password ? { password: decodeURIComponent(password) } : {}),
    };
  }
  if (!/^rediss?\+sentinel:\/\//.test(url)) throw new Error(`not a Redis URL: expected ${FORMS}`);
  const match = SENTINEL_URL.exec(url);
  if (!match) throw new Error('a Sentinel URL is redis[s]+sentinel://[[user]:password@]host:port[,host:port…]/<masterName>[/<db>][?sentinelPassword=…]');
  const [, scheme, user, password, hosts, name, db, query] = match as unknown as [string, string, string | undefined, string | undefined, string, string, string | undefined, string | undefined];
  const sentinels = addresses(hosts, 26379, 'Sentinel');
  const params = new URLSearchParams(query ?? '');
  const unknown = [...params.keys()].filter((key) => !(SENTINEL_PARAMS as readonly string[]).includes(key));
  if (unknown.length > 0) throw new Error(`a Sentinel URL's query takes ${SENTINEL_PARAMS.join(' and ')} only, not ${unknown.join(', ')}`);
  const sentinelUsername = params.get('sentinelUsername');
  const sentinelPassword = params.get('sentinelPassword');
  return {
    kind: 'sentinel',
    tls: scheme === 'rediss',
    sentinels,
    name: decodeURIComponent(name),
    db: db === undefined ? 0 : Number(db),
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(password ? { password: decodeURIComponent(password) } : {}),
    ...(sentinelUsername ? { sentinelUsername } : {}),
    ...(sentinelPassword ? { sentinelPassword } : {}),
  };
}

/** Client options that belong to the Cluster object rather than to each node's connection. */
type ClusterLevel = Pick<ClusterOptions, 'enableOfflineQueue' | 'enableAutoPipelining' | 'lazyConnect' | 'clusterRetryStrategy'>;

/**
 * A client for the target: Sentinel's answer to "who is the master", asked again on every
 * reconnect; or a Cluster that follows MOVED/ASK redirections and refreshes its slot map when a
 * replica is promoted.
 */
function newRedis(url: string, options: RedisOptions, clusterOptions: ClusterLevel = {}): RedisClient {
  const target = parseRedisUrl(url);
  if (target.kind === 'single') return new Redis(url, options);
  // TLS with Node's defaults: the certificate must chain to a system CA or one in NODE_EXTRA_CA_CERTS
  // and name the address connected to (docs/configuration.md#tls); verification is never turned off.
  const tls = target.tls ? { tls: {} } : {};
  if (target.kind === 'cluster') {
    const { enableOfflineQueue, enableAutoPipelining, lazyConnect, retryStrategy, ...perNode } = options;
    return new Cluster(target.nodes, {
      // ioredis resolves seed hostnames to IP addresses before connecting, and TLS would then check
      // the certificate against the IP, which certificates naming hosts (ElastiCache's) do not list:
      // connect to a seed by the name it was given. Nodes learned from the cluster are connected to
      // by the address the cluster announces (an IP unless `cluster-preferred-endpoint-type hostname`).
      ...(target.tls ? { dnsLookup: (address: string, callback: (error: Error | null, address: string) => void) => callback(null, address) } : {}),
      enableOfflineQueue,
      enableAutoPipelining,
      lazyConnect,
      // The service's back-off applies to reaching the cluster as a whole.
      clusterRetryStrategy: retryStrategy ? (attempt) => retryStrategy(attempt) ?? null : undefined,
      // A primary that is down until its replica is promoted answers CLUSTERDOWN: retry within the command's budget.
      retryDelayOnClusterDown: 200,
      retryDelayOnFailover: 200,
      ...clusterOptions,
      redisOptions: { ...perNode, username: target.username, password: target.password, ...tls },
    });
  }
  return new Redis({
    ...options,
    sentinels: target.sentinels,
    name: target.name,
    role: 'master',
    db: target.db,
    username: target.username,
    password: target.password,
    sentinelUsername: target.sentinelUsername,
    sentinelPassword: target.sentinelPassword,
    // TLS to the sentinels (sentinelTLS) and to the master they name (tls, which ioredis applies in
    // Sentinel mode only with enableTLSForSentinelMode).
    ...(target.tls ? { ...tls, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
    // Listens for Sentinel's +switch-master, so a promotion is followed at once, not at the next failed command.
    failoverDetector: true,
    // A master that was demoted while we held the connection answers writes with READONLY: reconnect, asking Sentinel again.
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
  });
}

/**
 * Why a TLS handshake with the first sentinel or seed node of a `rediss+sentinel://` or
 * `rediss+cluster://` URL fails (`host:port: reason`), or undefined when it succeeds, when nothing
 * accepts the connection (Redis is away, which the client's own error says), or when the URL is not
 * one of those. ioredis's Sentinel and Cluster clients report a refused certificate only as
 * "Connection is closed."; this asks the handshake itself, with the same trust (Node's defaults:
 * system CAs and NODE_EXTRA_CA_CERTS), so the log says what to fix.
 */
export async function tlsHandshakeFailure(url: string, timeoutMs = 5000): Promise<string | undefined> {
  const target = parseRedisUrl(url);
  if (target.kind === 'single' || !target.tls) return undefined;
  const { host, port } = target.kind === 'sentinel' ? target.sentinels[0]! : target.nodes[0]!;
  return new Promise((resolve) => {
    let connected = false; // TCP: what fails after it is the handshake
    const socket = connectTls({ host, port, timeout: timeoutMs }, () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('connect', () => (connected = true));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(connected ? `${host}:${port}: no TLS handshake within ${timeoutMs} ms` : undefined);
    });
    socket.once('error', (error) => resolve(connected ? `${host}:${port}: ${error.message}` : undefined));
  });
}

/**
 * The Redis connection of a long-lived service (publisher, worker, operator). Commands fail at once
 * while Redis is away instead of queueing without bound: callers answer 503 or keep their last
 * view, and nothing piles up in memory; the connection retries in the background.
 */
export function connectRedis(url: string, logger: Logger, name: string): RedisClient {
  const redis = newRedis(url, {
    connectionName: name,
    // Commands issued in one turn of the event loop go out in one write (a busy publisher's appends).
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 5000),
  });
  let down = false;
  // Cluster: a node's own connection error (a certificate that does not name the address the
  // cluster announces for it, say), once per node and outage; the Cluster's error says only that all
  // failed. "Connection is closed." tells nothing (tlsHandshakeFailure says why).
  const nodesReported = new Set<string>();
  redis.on('error', (error: Error) => {
    if (!down) {
      logger.warn({ err: error.message }, 'redis unavailable');
      void tlsHandshakeFailure(url).then((failure) => failure && logger.warn({ err: failure }, 'redis TLS handshake failed'));
    }
    down = true;
  });
  redis.on('node error', (error: Error, node: string) => {
    if (!nodesReported.has(node) && error.message !== 'Connection is closed.') logger.warn({ err: error.message, node }, 'redis node unavailable');
    nodesReported.add(node);
  });
  redis.on('ready', () => {
    if (down) logger.info('redis is back');
    down = false;
    nodesReported.clear();
  });
  return redis;
}

/**
 * The Redis connection of a one-shot command (`npm run bridge`): one attempt within 5 s, no
 * retries, and an error naming the (redacted) address when Redis is not there, so the command
 * exits with a reason instead of waiting.
 */
export async function connectRedisOnce(url: string, redactedUrl: string): Promise<RedisClient> {
  // sentinelRetryStrategy / clusterRetryStrategy null: one pass over the sentinels or seed nodes, then the error, as for a single node.
  const redis = newRedis(
    url,
    { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5000, retryStrategy: () => null, sentinelRetryStrategy: () => null },
    { clusterRetryStrategy: () => null },
  );
  redis.on('error', () => undefined); // connect() reports it
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const tls = await tlsHandshakeFailure(url);
    throw new Error(`Redis is not reachable at ${redactedUrl}: ${(error as Error).message || 'connection refused'}${tls ? ` (TLS: ${tls})` : ''}`);
  }
  return redis;
}

/** A second connection to the same Redis (a subscriber, which cannot send other commands). */
export function duplicateRedis(redis: RedisClient, override: Partial<RedisOptions> & ClusterLevel): RedisClient {
  // A Cluster's duplicate keeps its seed nodes; its options are the Cluster's (enableOfflineQueue is one of them).
  return redis instanceof Cluster ? redis.duplicate([], override) : redis.duplicate(override);
}
