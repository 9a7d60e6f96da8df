/**
 * The wire contract between SocketBridge's parts and its clients, in one place: what a client
 * receives (the envelope), the `recover` procedure, the history stream the publisher writes and
 * the worker reads, the close codes and error names a socket may see, and the refusal reasons
 * metrics count. docs/cluster-protocol.md lists the client-facing part; a unit test
 * (services/common/test/unit/wire-docs.test.ts) holds the two together.
 *
 * No imports: the client's browser bundle takes this file through `@socketbridge/common/wire`.
 */

/** What every channel receives: the RabbitMQ message's data with its identity, history offset and time. */
export interface Envelope<T = unknown> {
  /** The AMQP messageId, or one we generated. */
  id: string;
  /** The Redis Streams id of the channel's history entry; increases per channel. */
  offset: string;
  /**
   * The offset of the channel's entry before this one (`0-0` for the first): a client whose last
   * offset is not `prev` knows it missed something and recovers it from history.
   */
  prev: string;
  /** When the publisher took it from RabbitMQ, ms since the epoch. */
  ts: number;
  data: T;
}

/** A stream offset (`<ms>-<seq>`), as Redis Streams ids are written. */
export const OFFSET = /^\d{1,20}-\d{1,20}$/;

/** The offset before a channel's first entry: `prev` of the first envelope, `since` of "everything". */
export const FIRST_PREV = '0-0';

// --- history: the Redis stream `history:<channel>` -------------------------------------------

/**
 * The fields of one history stream entry. The append script the publisher runs (common/src/history.ts)
 * writes them, the worker's `recover` (worker/src/recover.ts) reads them; the stream id is the offset.
 */
export const HISTORY_FIELDS = {
  /** The offset of the entry before this one. */
  prev: 'p',
  /** The JSON of a `HistoryEntry`. */
  entry: 'e',
} as const;

/** What a history entry stores of the envelope besides its offsets (the `e` field, as JSON). */
export type HistoryEntry = Pick<Envelope, 'id' | 'ts' | 'data'>;

/** Rebuilds an envelope from one XRANGE row: the stream id and its flat `[field, value, …]` list. */
export function envelopeFromHistory(offset: string, fields: readonly string[]): Envelope {
  const values = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) values.set(fields[i]!, fields[i + 1]!);
  const body = JSON.parse(values.get(HISTORY_FIELDS.entry) ?? '{}') as HistoryEntry;
  return { id: body.id, offset, prev: values.get(HISTORY_FIELDS.prev) ?? FIRST_PREV, ts: body.ts, data: body.data };
}

// --- the recover procedure -------------------------------------------------------------------

/** The procedure a client invokes to fetch what it missed. */
export const RECOVER_PROCEDURE = 'recover';

/** Most entries one `recover` call returns; the client asks again from the last offset while `more`. */
export const RECOVER_PAGE_LIMIT = 500;

export interface RecoverRequest {
  channel: string;
  /** The last offset the client has; `0-0` for everything history holds. */
  since: string;
  limit?: number;
}

/**
 * `recovered: false` still carries the history that is left, from its start: the client reports
 * the gap, then resumes from those entries instead of stumbling over the same gap again.
 */
export type RecoverReply =
  | { recovered: true; entries: Envelope[]; more: boolean }
  | { recovered: false; reason: string; entries: Envelope[]; more: boolean };

// --- close codes -----------------------------------------------------------------------------

/**
 * WebSocket close codes a worker or broker closes a socket with. 4001-4009 are SocketCluster's
 * own (socketcluster-client knows them); 4100-4102 and 4501 are ours. socketcluster-client reconnects
 * by itself after codes below 4500 (and not 1000): ours ask the client to come back (to another
 * worker, through the load balancer) and recover from history.
 */
export const CLOSE_CODES = {
  /** More than 1,000 requests waiting on one socket. */
  requestFlood: 1008,
  /** No pong within the ping timeout. */
  pingTimeout: 4001,
  /** No handshake within the handshake timeout. */
  handshakeTimeout: 4005,
  /** The handshake was refused (the error came back first), or a second handshake was sent. */
  handshakeRejected: 4008,
  /** Something other than a handshake came before the handshake. */
  noHandshake: 4009,
  /** The worker is shutting down: reconnect, and a load balancer sends you to another worker. */
  draining: 4100,
  /** The socket stopped reading and its outbound buffer passed the limit. */
  slowClient: 4101,
  /** An admin disconnected the client through the server API and asked it to come back. */
  disconnectedReconnect: 4102,
  /** An admin disconnected the client through the server API: do not reconnect (>= 4500, socketcluster-client stays closed). */
  disconnectedNoReconnect: 4501,
} as const;

export type CloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

// --- error names -----------------------------------------------------------------------------

/**
 * Every error name a client socket may receive in an answer, and when. The names socketcluster-server
 * uses are kept, so socketcluster-client and existing apps recognise them.
 */
export const SOCKET_ERRORS = {
  AuthRequiredError: 'handshake without a token on a worker that requires one',
  AuthTokenExpiredError: 'the token has expired (handshake, or #authenticate)',
  AuthTokenInvalidError: 'the token is not valid, or does not carry SocketBridge claims',
  AuthTokenNotBeforeError: 'the token is not valid yet (its nbf is in the future)',
  DrainingError: 'handshake on a worker that is shutting down: connect to another',
  SubscribeRefusedError: 'the channel policy refuses the subscription (reason in the message)',
  PublishRefusedError: 'a client publish where clients may not publish',
  BadRecoverRequestError: 'recover called without {channel, since, limit?}',
  RecoverRefusedError: 'recover on a channel the socket may not subscribe to',
  InvalidActionError: 'an unknown procedure, a malformed channel name, more channels than allowed, or an unsubscribe from a channel not subscribed',
  RefusedError: 'a hook failed unexpectedly: the worker could not check the request',
} as const;

export type SocketErrorName = keyof typeof SOCKET_ERRORS;

/** What cluster members (brokers, workers, publishers) may be refused with; clients never see these. */
export const CLUSTER_ERRORS = {
  BadClusterAuthError: 'a missing or wrong SCC_AUTH_KEY, at the WebSocket upgrade (HTTP 401)',
  CompatibilityError: 'a member whose protocol major version is not 9 or 10',
  InvalidInstanceTypeError: 'an instanceType other than scc-broker or scc-worker, or a join from the other type',
  InvalidInstancePortError: 'a broker without a valid instancePort',
  InvalidJoinError: 'a join payload not of the expected shape',
  StartupDelayError: 'a worker join during the state server start-up delay (the worker retries)',
} as const;

export type ClusterErrorName = keyof typeof CLUSTER_ERRORS;

// --- refusal reasons (metric labels) ---------------------------------------------------------

/**
 * The reasons a worker refuses a socket's action, as the `reason` label of its refusal counters;
 * each counter starts every reason of its list at zero, so dashboards show a flat line rather than
 * "no data" before the first refusal. `internal` is a hook that failed rather than refused.
 */
export const REFUSAL_REASONS = {
  handshake: ['draining', 'no_token', 'bad_token', 'expired_token', 'bad_claims', 'revoked'],
  /** A new token sent with `#authenticate` on an open socket: verified and checked as at the handshake. */
  refresh: ['bad_token', 'expired_token', 'bad_claims', 'revoked'],
  subscribe: ['bad_channel', 'no_policy', 'unauthenticated', 'not_owner'],
  publish: ['client_publish'],
  recover: ['bad_request'],
  eviction: ['slow', 'draining'],
} as const;

export type SubscribeRefusalReason = (typeof REFUSAL_REASONS.subscribe)[number];
export type RefusalReason =
  | (typeof REFUSAL_REASONS)[Exclude<keyof typeof REFUSAL_REASONS, 'eviction'>][number]
  | 'internal';

/** Outcomes of `recover`, the `outcome` label of socketbridge_recoveries_total. */
export const RECOVER_OUTCOMES = ['recovered', 'gap', 'refused'] as const;

// --- reserved cluster channels and client events -----------------------------------------------

/**
 * Cluster channels only members use: each starts with `#`, which CHANNEL_NAME never allows, so no
 * client can subscribe or publish there (the worker refuses both before anything reaches the cluster).
 */
export const RESERVED_CHANNELS = {
  /** The server API's orders and queries (publisher → every worker): common/src/control.ts. */
  control: '#sb.control',
  /** Presence join and leave notices (worker → every worker), which each worker passes to its subscribers of the channel. */
  presence: '#sb.presence',
  /** Prefix of a publisher's own reply channel (`#sb.reply.<instanceId>`): workers answer its queries there. */
  replyPrefix: '#sb.reply.',
} as const;

/**
 * Events a worker sends a client outside any channel (socketcluster-client: `socket.receiver(name)`),
 * so they enter no channel's history and leave the envelopes' `prev` chain alone.
 */
export const CLIENT_EVENTS = {
  /** A client joined or left a presence channel the socket is subscribed to: a `PresenceNotice`. */
  presence: 'sb.presence',
} as const;

/** The data of a CLIENT_EVENTS.presence event: one socket of `clientId` subscribed to (`join`) or left (`leave`) `channel`. */
export interface PresenceNotice {
  channel: string;
  clientId: string;
  action: 'join' | 'leave';
}

// --- lifecycle events (RabbitMQ) ---------------------------------------------------------------

/**
 * What a worker publishes to the lifecycle events exchange (SOCKETBRIDGE_EVENTS_*, opt-in), each
 * with the routing key `<event>.<channel or client>`: the channel for subscribe and unsubscribe,
 * else the client id (`-` for an anonymous socket or an unknown client).
 */
export const LIFECYCLE_EVENTS = {
  connect: 'a socket completed its handshake (routing key: connect.<clientId>)',
  disconnect: 'a socket that had connected closed, with its close code and reason (disconnect.<clientId>)',
  subscribe: 'a socket subscribed to a channel (subscribe.<channel>)',
  unsubscribe: 'a socket left a channel: unsubscribed, kicked off, or closed (unsubscribe.<channel>)',
  auth_failure: 'a handshake or #authenticate was refused, with the refusal reason (auth_failure.<clientId>)',
} as const;

export type LifecycleEventName = keyof typeof LIFECYCLE_EVENTS;

/** The routing key's client part for a socket with no (known) client. */
export const NO_CLIENT = '-';

/** The JSON body of a lifecycle event message. */
export interface LifecycleEvent {
  event: LifecycleEventName;
  /** ms since the epoch, when the worker saw it. */
  ts: number;
  /** The worker's instance id. */
  worker: string;
  socketId: string;
  /** The token's client id (`sub`); null for an anonymous socket (or a refused token). */
  clientId: string | null;
  channel?: string;
  /** disconnect: the WebSocket close code and reason. */
  code?: number;
  reason?: string;
  /** auth_failure: the refusal reason (as the handshake rejection metric's label) and the error name. */
  refusal?: string;
  error?: string;
}
