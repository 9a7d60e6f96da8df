import { clusterLinkEnv, env, issuersEnv, loadConfig, opsEnv } from '@socketbridge/common';

export const workerEnv = {
  ...clusterLinkEnv,
  ...opsEnv,
  /** SocketCluster's own name for a worker's port. */
  SOCKETCLUSTER_PORT: env.port(8000),
  /** The address to listen on (unset: every interface); `npm start` binds 127.0.0.1. */
  SOCKETBRIDGE_HOST: env.optionalString(),
  /** Must be unique per process: workers drop cluster messages stamped with their own id. Generated when unset. */
  SOCKETBRIDGE_INSTANCE_ID: env.optionalString(),
  /** Longest a client's first subscription to a channel waits for the channel's shard to confirm. */
  SOCKETBRIDGE_SUBSCRIBE_CONFIRM_TIMEOUT_MS: env.ms(3000),
  /** Whether client sockets may publish. Off: only the publisher publishes. */
  SOCKETBRIDGE_ALLOW_CLIENT_PUBLISH: env.bool(false),
  /** The key client JWTs are signed with (shared with the publisher); the worker verifies them (HS256). */
  SOCKETBRIDGE_AUTH_KEY: env.secret(32),
  /**
   * Identity providers whose tokens (RS256, ES256, EdDSA) the worker accepts besides the sign-up's
   * HS256 ones: a JSON array of {issuer, jwksUri, audience, algorithms?, clientIdClaim? (sub),
   * channelsClaim? (channels), channelPrefix?, allowHttp?}. Unset: none. See docs/auth.md.
   */
  SOCKETBRIDGE_JWT_ISSUERS: issuersEnv(),
  /** After fetching an issuer's keys, a token with an unknown `kid` refetches them only once this has passed (also after a failed fetch). */
  SOCKETBRIDGE_JWKS_COOLDOWN_MS: env.ms(30_000),
  /** An issuer's keys are refetched on the next token once older than this. */
  SOCKETBRIDGE_JWKS_CACHE_MAX_AGE_MS: env.ms(600_000),
  /** While an issuer's JWKS endpoint cannot be reached, keys fetched up to this long ago still verify tokens. */
  SOCKETBRIDGE_JWKS_MAX_STALE_MS: env.ms(3_600_000),
  /** A JWKS request that takes longer has failed. */
  SOCKETBRIDGE_JWKS_TIMEOUT_MS: env.int(5000, 100, 60_000),
  /** Refuse sockets that present no token at all (a bad or expired token is always refused). */
  SOCKETBRIDGE_REQUIRE_AUTH: env.bool(false),
  /** Extra public channel patterns, comma-separated (`#` makes every channel public: tests and demos only). */
  SOCKETBRIDGE_PUBLIC_CHANNELS: env.list(),
  SOCKETBRIDGE_REDIS_URL: env.redisUrl('redis://127.0.0.1:6379'),
  SOCKETBRIDGE_REGISTRY_RESYNC_MS: env.ms(30000),
  /**
   * On SIGTERM, how long to keep serving before telling clients to go (the load balancer needs a
   * moment to stop sending new ones), then over how long to spread the disconnects (no reconnect storm).
   */
  SOCKETBRIDGE_DRAIN_DELAY_MS: env.ms(2000),
  SOCKETBRIDGE_DRAIN_SPREAD_MS: env.ms(3000),
  /** A socket with more than this many bytes waiting to be sent is a client that stopped reading. */
  SOCKETBRIDGE_MAX_OUTBOUND_BYTES: env.int(4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  SOCKETBRIDGE_SLOW_CHECK_MS: env.ms(250),
  /** Most channels one client socket may be subscribed to at once; more are refused. */
  SOCKETBRIDGE_MAX_CHANNELS_PER_SOCKET: env.int(1000, 1, 1_000_000),
  /** Largest frame a client may send (subscribe, recover…): bigger frames close the socket (1009). */
  SOCKETBRIDGE_MAX_PAYLOAD_BYTES: env.int(64 * 1024, 1024, 64 * 1024 * 1024),
  /** Heartbeat: a ping to each client this often; a client silent for the timeout is closed (4001). */
  SOCKETBRIDGE_PING_INTERVAL_MS: env.ms(8000),
  SOCKETBRIDGE_PING_TIMEOUT_MS: env.ms(30000),
  /** A socket that has not completed the SocketCluster handshake within this is closed (4005). */
  SOCKETBRIDGE_HANDSHAKE_TIMEOUT_MS: env.ms(10000),
  SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS: env.ms(10000),
  /**
   * How often the worker renews its entry among the workers that answer channel info and presence
   * queries (Redis); the entry expires after three of these, so a killed worker stops being waited
   * for within that bound.
   */
  SOCKETBRIDGE_LIVENESS_INTERVAL_MS: env.ms(2000),
  /**
   * Lifecycle events (connect, disconnect, subscribe, unsubscribe, auth failures) into RabbitMQ:
   * where to publish them: one amqp(s):// URL or a comma-separated list of a cluster's nodes, as
   * SOCKETBRIDGE_RABBITMQ_URL. Unset: off.
   */
  SOCKETBRIDGE_EVENTS_RABBITMQ_URL: env.optionalRabbitmqUrl(),
  /** How long one node's connection attempt may take before the next node is tried (as the publisher's). */
  SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS: env.int(5000, 100, 600000),
  /** The topic exchange they go to (declared durable); routing key `<event>.<channel or client>`. */
  SOCKETBRIDGE_EVENTS_EXCHANGE: env.string('socketbridge.events'),
  /** Most events waiting in memory while RabbitMQ is slow or away; past it they are dropped and counted. */
  SOCKETBRIDGE_EVENTS_QUEUE_LIMIT: env.int(10_000, 1, 10_000_000),
  /** Most events published and not yet confirmed. */
  SOCKETBRIDGE_EVENTS_MAX_IN_FLIGHT: env.int(500, 1, 100_000),
  /** Confirms not back within this: the connection is dropped and its events sent again. */
  SOCKETBRIDGE_EVENTS_CONFIRM_TIMEOUT_MS: env.int(5000, 100, 600_000),
  SOCKETBRIDGE_EVENTS_RECONNECT_MAX_MS: env.ms(5000),
};

export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

export function loadWorkerConfig(source: NodeJS.ProcessEnv = process.env) {
  return loadConfig(workerEnv, source);
}
