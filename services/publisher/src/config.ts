import { isIP } from 'node:net';
import { ConfigError, DEFAULT_HISTORY, QUEUE_TYPES, clusterLinkEnv, env, loadConfig, opsEnv } from '@socketbridge/common';

/** proxy-addr's names for address ranges, which Fastify's trustProxy accepts beside addresses and CIDRs. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isProxyAddress(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry)) return true;
  const [address = '', bits, ...rest] = entry.split('/');
  const family = isIP(address);
  if (!family || rest.length) return false;
  if (bits === undefined) return true;
  return (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)) || (family === 4 && isIP(bits) === 4);
}

/**
 * Fastify's `trustProxy`: `false` (the default: the socket's address is the client's, and
 * X-Forwarded-For is ignored), `true` (believe every hop: only when nothing but the proxy can reach
 * the port), or comma-separated proxy addresses / CIDRs. No hop count: Fastify 5 trusts no hop at
 * all for a number, as it cannot tell a proxy from a client that sends the header itself.
 */
export const trustProxyEnv = env.string('false').transform((value, ctx): boolean | string[] => {
  if (value === 'false') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'a hop count is not supported (Fastify 5 trusts no hop for one): name the proxies, as addresses or CIDRs' });
    return false;
  }
  const entries = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = entries.filter((entry) => !isProxyAddress(entry));
  if (entries.length && !bad.length) return entries;
  ctx.addIssue({ code: 'custom', message: `expected false, true or comma-separated proxy addresses / CIDRs; not an address or CIDR: ${bad.join(', ')}` });
  return false;
});

export const publisherEnv = {
  ...clusterLinkEnv,
  ...opsEnv,
  SOCKETBRIDGE_PORT: env.port(3000),
  SOCKETBRIDGE_HOST: env.string('0.0.0.0'),
  SOCKETBRIDGE_RABBITMQ_URL: env.rabbitmqUrl('amqp://guest:guest@127.0.0.1:5672'),
  /** Bound on one node's connection attempt, so a node that does not answer hands over to the next soon. */
  SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS: env.int(5000, 100, 600000),
  SOCKETBRIDGE_REDIS_URL: env.redisUrl('redis://127.0.0.1:6379'),
  /** Signs client JWTs; the workers verify with the same key. */
  SOCKETBRIDGE_AUTH_KEY: env.secret(32),
  /** Admin routes want it in `x-api-key`. */
  SOCKETBRIDGE_API_KEY: env.secret(16),
  SOCKETBRIDGE_TOKEN_TTL_SECONDS: env.int(86400, 60, 30 * 86400),
  /**
   * How long a revocation by client (and one by `jti` whose `exp` is not given) is kept: the longest
   * lifetime of any token the workers accept. Unset: SOCKETBRIDGE_TOKEN_TTL_SECONDS, right when the
   * sign-up is the only way in; an identity provider's longer-lived tokens need it set to theirs.
   */
  SOCKETBRIDGE_REVOCATION_TTL_SECONDS: env.optionalInt(60, 366 * 86400),
  /** Enables `GET /v1/publish-data-over-ch` (fake data, admin key needed); 404 otherwise. */
  SOCKETBRIDGE_TEST_MODE: env.bool(false),
  /** The worker WebSocket URL the console's channel tail connects to (e.g. wss://ws.example.com); unset: the first worker the cluster lists. */
  SOCKETBRIDGE_CONSOLE_WORKER_URL: env.optionalString(),
  /** Start consuming at boot; `GET /v1/create-rabbit-ch` is then a status call. */
  SOCKETBRIDGE_CONSUME_ON_START: env.bool(true),
  SOCKETBRIDGE_PREFETCH: env.int(200, 1, 65535),
  SOCKETBRIDGE_MAX_MESSAGE_BYTES: env.int(256 * 1024, 1, 64 * 1024 * 1024),
  SOCKETBRIDGE_EXCHANGE: env.string('socketbridge'),
  SOCKETBRIDGE_QUEUE: env.string('socketbridge.default'),
  /**
   * Declare the default queue with `x-single-active-consumer`: one publisher replica at a time
   * consumes it, so per-channel order holds across replicas and failover. RabbitMQ refuses to
   * change this on an existing queue: pick it before the queue is first declared.
   */
  SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER: env.bool(false),
  /**
   * The default queue's type, as a bridge queue's `type`: classic (one node), quorum (replicated
   * over a RabbitMQ cluster) or stream. RabbitMQ cannot change it on an existing queue
   * (docs/configuration.md, changing the default queue's type).
   */
  SOCKETBRIDGE_QUEUE_TYPE: env.oneOf(QUEUE_TYPES, 'classic'),
  SOCKETBRIDGE_DEAD_LETTER_EXCHANGE: env.string('socketbridge.dead-letter'),
  SOCKETBRIDGE_DEAD_LETTER_QUEUE: env.string('socketbridge.dead-letter'),
  SOCKETBRIDGE_RECONNECT_MAX_MS: env.ms(5000),
  /** How long a message the pipeline could not take (history or cluster away) waits before it is requeued; also the pause between tries. */
  SOCKETBRIDGE_REQUEUE_DELAY_MS: env.ms(500),
  /** How long a RabbitMQ message whose publish failed is tried again in place, its channel's later messages waiting (order kept), before it is requeued. */
  SOCKETBRIDGE_PUBLISH_RETRY_MS: env.ms(30000),
  SOCKETBRIDGE_REGISTRY_RESYNC_MS: env.ms(30000),
  /** History kept for channels whose policy names none: entries per channel, and their age. */
  SOCKETBRIDGE_HISTORY_SIZE: env.int(DEFAULT_HISTORY.size, 1, 10_000_000),
  SOCKETBRIDGE_HISTORY_TTL_SECONDS: env.int(DEFAULT_HISTORY.ttlSeconds, 1, 30 * 86400),
  /** Per client address per minute, one budget across the sign-up and sign-in routes and every replica (counted in Redis). */
  SOCKETBRIDGE_AUTH_RATE_LIMIT: env.int(30, 1, 100000),
  /** Prefix of the sign-in budget's Redis keys (`<prefix><address>`). */
  SOCKETBRIDGE_RATE_LIMIT_PREFIX: env.string('socketbridge:sign-in:'),
  /** Which X-Forwarded-For hops to believe for the client's address (see `trustProxyEnv`). */
  SOCKETBRIDGE_TRUST_PROXY: trustProxyEnv,
  SOCKETBRIDGE_BODY_LIMIT_BYTES: env.int(64 * 1024, 1024, 16 * 1024 * 1024),
  SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS: env.ms(15000),
  /** How long channel info and presence wait for the live workers' answers; past it they answer with what came (`complete: false`). */
  SOCKETBRIDGE_CLUSTER_QUERY_TIMEOUT_MS: env.int(1000, 50, 30_000),
};

export type PublisherConfig = ReturnType<typeof loadPublisherConfig>;

export function loadPublisherConfig(source: NodeJS.ProcessEnv = process.env) {
  const config = loadConfig(publisherEnv, source);
  // What RabbitMQ would refuse at every declaration (bridges.ts says the same of a bridge's queues).
  if (config.SOCKETBRIDGE_QUEUE_TYPE === 'stream' && config.SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER) {
    throw new ConfigError('invalid environment:\n  SOCKETBRIDGE_QUEUE_TYPE: a stream queue has no single active consumer over AMQP 0-9-1; set SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER=false');
  }
  return config;
}
