import type { QUEUE_TYPES } from './bridge-schema.js';
import { CHANNEL_NAME, TEMPLATE_ROOTS, type ChannelPolicy } from './channels.js';

export type QueueType = (typeof QUEUE_TYPES)[number];

/** A queue the publisher consumes, how it is declared and bound, and where its messages go. */
export interface BridgeQueue {
  name: string;
  durable: boolean;
  /** Declares `x-single-active-consumer`, so one replica at a time consumes it and order holds. */
  singleActiveConsumer: boolean;
  /** Absent in bridges written before queue types: classic. */
  type?: QueueType;
  /** Quorum queues only: x-delivery-limit, x-quorum-initial-group-size. */
  quorum?: { deliveryLimit?: number; initialGroupSize?: number };
  /** Stream queues only: x-max-length-bytes, x-max-age, x-stream-max-segment-size-bytes. */
  stream?: { maxLengthBytes?: number; maxAge?: string; segmentSizeBytes?: number };
  bindings: Array<{ exchange: string; type: 'direct' | 'topic' | 'fanout' | 'headers'; routingKey: string }>;
  /** Template naming the channel, over `routingKey`, `headers.<name>` and `body.<field>`. */
  route: { channel: string };
}

/** A bridge: queues in, channels out. The operator writes these to the registry; publishers run them. */
export interface Bridge {
  name: string;
  queues: BridgeQueue[];
  channels: ChannelPolicy[];
}

/**
 * Redis keys shared by the publisher, the workers and the operator. Keys that one Lua script or
 * MULTI touches together share a hash tag (the part in braces), so on a Redis Cluster they land
 * in one slot and the script stays legal: a channel's stream and its id hash (the append), the
 * bridges and their owners (bridge-writes.ts, the reconciler), and the account keys (sign-up).
 * Changing a name here orphans the data under the old one (see docs/scaling.md, upgrading).
 */
export const registryKeys = {
  client: (id: string) => `socketbridge:{accounts}:client:${id}`,
  clientIds: 'socketbridge:{accounts}:clients',
  emails: 'socketbridge:{accounts}:client-emails',
  bridges: 'socketbridge:{registry}:bridges',
  /** Pub/sub channel announcing that bridges or policies changed; readers reload on it. */
  changes: 'socketbridge:{registry}:changes',
  history: (channel: string) => `socketbridge:history:{${channel}}`,
  /** Message id → `offset prev` for the channel, so a redelivered message keeps its first offset. */
  historyIds: (channel: string) => `socketbridge:history-ids:{${channel}}`,
  /** Bridge name → the SocketBridge resource (or file) that owns it; only its owner may change it. */
  owners: 'socketbridge:{registry}:bridge-owners',
  /** A revoked token (`jti`), with the token lifetime as its expiry (the server API's revoke). */
  revokedToken: (jti: string) => `socketbridge:{revocations}:jti:${jti}`,
  /** A client's cut-off (epoch seconds): its tokens issued at or before it are refused; same expiry. */
  revokedClient: (clientId: string) => `socketbridge:{revocations}:client:${clientId}`,
  /** Every revocation (`jti:<jti>` or `client:<id>`) scored by its expiry (ms): what a worker loads at start. */
  revocations: 'socketbridge:{revocations}:index',
  /**
   * The workers that answer cluster queries (channel info, presence), each scored by when its entry
   * expires (ms): a worker refreshes its own while it runs, so a killed one drops out by itself.
   */
  liveWorkers: 'socketbridge:{workers}:live',
  /** A message without messageId: its content hash → the id its first delivery got (written by the history append script), with the channel's history TTL. */
  redeliveryId: (channel: string, hash: string) => `socketbridge:history-redelivery:{${channel}}:${hash}`,
  /** Stream queue name → the offset its consumer resumes from (the publisher's stream-offsets.ts). */
  streamOffsets: 'socketbridge:{stream-offsets}:queues',
};

const PATTERN_SEGMENT = /^(\*|#|\{[A-Za-z][A-Za-z0-9_]*\}|[A-Za-z0-9_:@-]+)$/;

/**
 * What a schema cannot say about a bridge, for every way one enters the registry (the operator,
 * `npm run bridge`, `PUT /v1/bridges`): duplicate queue names or channel patterns, RabbitMQ's
 * reserved `amq.` names, one exchange bound with two types, route templates naming fields that do
 * not exist, malformed channel patterns. Each problem is one readable sentence; empty means valid.
 */
export function bridgeProblems(bridge: Bridge): string[] {
  const problems: string[] = [];
  if (bridge.queues.length === 0) problems.push('spec.queues must declare at least one queue');
  const seen = new Set<string>();
  const exchangeTypes = new Map<string, string>();
  for (const queue of bridge.queues) {
    if (seen.has(queue.name)) problems.push(`queue ${queue.name} is declared twice`);
    seen.add(queue.name);
    if (queue.name.startsWith('amq.')) problems.push(`queue ${queue.name}: names starting with amq. are reserved by RabbitMQ`);
    if (!queue.route.channel) problems.push(`queue ${queue.name}: route.channel is empty`);
    problems.push(...queueTypeProblems(queue));
    for (const binding of queue.bindings) {
      const type = exchangeTypes.get(binding.exchange);
      if (type !== undefined && type !== binding.type) {
        problems.push(`exchange ${binding.exchange} is bound as ${type} and as ${binding.type}; an exchange has one type`);
      }
      exchangeTypes.set(binding.exchange, type ?? binding.type);
    }
    for (const [, field] of queue.route.channel.matchAll(/\{([^}]*)\}/g)) {
      const root = field!.split('.')[0]!;
      const known = (TEMPLATE_ROOTS as readonly string[]).includes(root) && (root === 'routingKey' ? field === 'routingKey' : field!.includes('.'));
      if (!known) problems.push(`queue ${queue.name}: route ${queue.route.channel} names {${field}}; use {routingKey}, {headers.<name>} or {body.<field>}`);
    }
    const literal = queue.route.channel.replace(/\{[^}]*\}/g, 'x');
    if (!CHANNEL_NAME.test(literal)) problems.push(`queue ${queue.name}: route ${queue.route.channel} cannot make a valid channel name`);
  }
  const patterns = new Set<string>();
  for (const policy of bridge.channels) {
    if (patterns.has(policy.pattern)) problems.push(`channel pattern ${policy.pattern} is declared twice`);
    patterns.add(policy.pattern);
    const segments = policy.pattern.split('.');
    const bad = segments.find((s, i) => !PATTERN_SEGMENT.test(s) || (s === '#' && i !== segments.length - 1));
    if (bad !== undefined) problems.push(`channel pattern ${policy.pattern}: segment ${JSON.stringify(bad)} is not a literal, *, {name} or a final #`);
    if (policy.access === 'owner' && !segments.includes('{clientId}')) problems.push(`channel pattern ${policy.pattern}: owner access needs a {clientId} segment`);
  }
  return [...new Set(problems)];
}

/** What RabbitMQ refuses or ignores for a queue type (the CRD's CEL rules on a queue say the same). */
function queueTypeProblems(queue: BridgeQueue): string[] {
  const type = queue.type ?? 'classic';
  const problems: string[] = [];
  if (type !== 'classic' && !queue.durable) problems.push(`queue ${queue.name}: ${type} queues are always durable`);
  if (queue.quorum && type !== 'quorum') problems.push(`queue ${queue.name}: quorum settings need type quorum`);
  if (queue.stream && type !== 'stream') problems.push(`queue ${queue.name}: stream settings need type stream`);
  if (type === 'stream' && queue.singleActiveConsumer) problems.push(`queue ${queue.name}: a stream queue has no single active consumer over AMQP 0-9-1`);
  return problems;
}

/** The x-arguments a queue is declared with: the operator declares them, RabbitMQ refuses a redeclaration that differs. */
export function queueArguments(queue: BridgeQueue): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  if (queue.singleActiveConsumer) args['x-single-active-consumer'] = true;
  const type = queue.type ?? 'classic';
  if (type === 'classic') return args;
  args['x-queue-type'] = type;
  if (queue.quorum?.deliveryLimit !== undefined) args['x-delivery-limit'] = queue.quorum.deliveryLimit;
  if (queue.quorum?.initialGroupSize !== undefined) args['x-quorum-initial-group-size'] = queue.quorum.initialGroupSize;
  if (queue.stream?.maxLengthBytes !== undefined) args['x-max-length-bytes'] = queue.stream.maxLengthBytes;
  if (queue.stream?.maxAge !== undefined) args['x-max-age'] = queue.stream.maxAge;
  if (queue.stream?.segmentSizeBytes !== undefined) args['x-stream-max-segment-size-bytes'] = queue.stream.segmentSizeBytes;
  return args;
}
