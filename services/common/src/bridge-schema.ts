import { Type, type Static, type TSchema } from 'typebox';
import { DEFAULT_HISTORY } from './channels.js';

/**
 * The bridge spec, written once. `npm run generate:crd` turns `SocketBridgeSpecSchema` into the
 * CRD's `spec` schema (scripts/src/generate-crd.ts), the publisher's `PUT /v1/bridges/:name` takes
 * `BridgeBodySchema` as its body schema, and the operator's types are `Static` of these. Only what
 * JSON Schema and a CRD's structural schema both say goes here: `type` on every node, no `$ref`,
 * enums as `enum`, not `anyOf`. `x-kubernetes-validations` are the CEL rules the API server runs;
 * the REST API's AJV ignores them and `bridgeProblems` (bridges.ts) checks the same things for
 * every entry point. `additionalProperties: false` makes REST bodies strict; the generator drops
 * it (a structural schema may not combine it with `properties`, and the API server prunes anyway).
 */

/** A string enum as a CRD wants it (`type` + `enum`); TypeBox's union of literals is an `anyOf`. */
function stringEnum<const T extends readonly string[]>(values: T, options: object = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', ...options, enum: [...values] });
}

/** CEL rules at this node, as rule/message pairs; the API server and the operator's local mode (crd.ts) evaluate them. */
function cel(...pairs: string[]) {
  const rules: Array<{ rule: string; message: string }> = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) rules.push({ rule: pairs[i]!, message: pairs[i + 1]! });
  return { 'x-kubernetes-validations': rules };
}

const strict = { additionalProperties: false } as const;
const printable = '^[^\\x00-\\x1f\\x7f]+$';
const amqpName = (options: object = {}) => Type.String({ ...options, minLength: 1, maxLength: 255, pattern: printable });

export const EXCHANGE_TYPES = ['direct', 'topic', 'fanout', 'headers'] as const;
export const ACCESS_LEVELS = ['public', 'authenticated', 'owner'] as const;
export const DELETION_POLICIES = ['retain', 'delete'] as const;
export const QUEUE_TYPES = ['classic', 'quorum', 'stream'] as const;

/** RabbitMQ's x-max-age units: years, months, days, hours, minutes, seconds. */
export const STREAM_MAX_AGE = '^[1-9][0-9]{0,8}(Y|M|D|h|m|s)$';

export const QuorumSpecSchema = Type.Object(
  {
    deliveryLimit: Type.Optional(
      Type.Integer({
        description: 'x-delivery-limit: after this many deliveries RabbitMQ dead-letters the message (or drops it without a dead-letter exchange). Unset: no limit.',
        minimum: 1,
        maximum: 1_000_000,
      }),
    ),
    initialGroupSize: Type.Optional(
      Type.Integer({ description: "x-quorum-initial-group-size: how many nodes hold a replica. Unset: every node of the cluster.", minimum: 1, maximum: 99 }),
    ),
  },
  { ...strict, description: 'Arguments of a quorum queue (type quorum only).' },
);

export const StreamSpecSchema = Type.Object(
  {
    maxLengthBytes: Type.Optional(Type.Integer({ description: 'x-max-length-bytes: the stream drops its oldest segments beyond this size.', minimum: 1, maximum: 1e15 })),
    maxAge: Type.Optional(Type.String({ description: 'x-max-age: the stream drops segments older than this, such as 7D, 12h or 30m (Y, M, D, h, m, s).', pattern: STREAM_MAX_AGE })),
    segmentSizeBytes: Type.Optional(
      Type.Integer({ description: 'x-stream-max-segment-size-bytes: size of one segment file (retention drops whole segments).', minimum: 1, maximum: 3_000_000_000 }),
    ),
  },
  { ...strict, description: 'Arguments of a stream queue (type stream only).' },
);

export const BindingSpecSchema = Type.Object(
  {
    exchange: amqpName(),
    type: stringEnum(EXCHANGE_TYPES),
    routingKey: Type.Optional(
      Type.String({ description: 'Binding key (topic patterns use * and #); fanout and headers exchanges ignore it.', maxLength: 255, default: '' }),
    ),
  },
  strict,
);

export const RouteSpecSchema = Type.Object(
  {
    channel: Type.String({
      description: "Template naming each message's channel, over {routingKey}, {headers.<name>} and {body.<field>}, such as prices.{body.symbol}.",
      minLength: 1,
      maxLength: 200,
    }),
  },
  strict,
);

export const QueueSpecSchema = Type.Object(
  {
    name: amqpName({ description: 'The RabbitMQ queue.', ...cel("!self.startsWith('amq.')", 'queue names starting with amq. are reserved by RabbitMQ') }),
    durable: Type.Optional(Type.Boolean({ description: 'Survives a RabbitMQ restart.', default: true })),
    singleActiveConsumer: Type.Optional(
      Type.Boolean({
        description:
          "Declares x-single-active-consumer: one publisher replica consumes at a time, so each channel gets the queue's order. RabbitMQ cannot change this on an existing queue.",
        default: false,
      }),
    ),
    type: Type.Optional(
      stringEnum(QUEUE_TYPES, {
        description:
          'classic (one node), quorum (replicated over a RabbitMQ cluster, survives losing a minority of nodes) or stream (a replicated log; the publisher resumes from the offset it last handled). RabbitMQ cannot change it on an existing queue.',
        default: 'classic',
      }),
    ),
    quorum: Type.Optional(QuorumSpecSchema),
    stream: Type.Optional(StreamSpecSchema),
    bindings: Type.Optional(
      Type.Array(BindingSpecSchema, { description: 'Exchanges this queue is bound to; each exchange is declared (durable) with its type.', maxItems: 20, default: [] }),
    ),
    route: RouteSpecSchema,
  },
  {
    ...strict,
    // The same rules as bridgeProblems (bridges.ts), which every entry point runs; has() because local mode may see no defaults.
    ...cel(
      "!has(self.type) || self.type == 'classic' || !has(self.durable) || self.durable",
      'quorum and stream queues are always durable',
      "!has(self.quorum) || (has(self.type) && self.type == 'quorum')",
      'quorum settings need type quorum',
      "!has(self.stream) || (has(self.type) && self.type == 'stream')",
      'stream settings need type stream',
      "!has(self.type) || self.type != 'stream' || !has(self.singleActiveConsumer) || !self.singleActiveConsumer",
      'a stream queue has no single active consumer over AMQP 0-9-1',
    ),
  },
);

export const HistorySpecSchema = Type.Object(
  {
    size: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: DEFAULT_HISTORY.size })),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86400, default: DEFAULT_HISTORY.ttlSeconds })),
  },
  { ...strict, description: 'Per-channel history for recovery (a Redis stream), capped by size and age.' },
);

export const ChannelSpecSchema = Type.Object(
  {
    pattern: Type.String({ description: 'Dot-separated segments, each a literal, *, {name} or a final #.', minLength: 1, maxLength: 200 }),
    access: stringEnum(ACCESS_LEVELS, {
      description: 'public (anyone, even anonymous), authenticated (any signed-in client), owner (the client named by {clientId}).',
    }),
    history: Type.Optional(HistorySpecSchema),
    presence: Type.Optional(
      Type.Boolean({
        description:
          "Presence: the server API lists the client ids subscribed (GET /v1/channels/{channel}/presence) and subscribers receive join and leave notices (event sb.presence). Off: neither.",
        default: false,
      }),
    ),
  },
  { ...strict, ...cel("self.access != 'owner' || self.pattern.contains('{clientId}')", 'owner access needs a {clientId} segment in the pattern') },
);

/** What a bridge is, wherever it is written: the REST body, and the SocketBridge spec's core. */
const bridgeFields = {
  queues: Type.Array(QueueSpecSchema, {
    description: 'Queues the publishers consume; each is declared, bound and routed.',
    minItems: 1,
    maxItems: 50,
    ...cel('self.all(q, self.exists_one(p, p.name == q.name))', 'queue names must be unique within a SocketBridge'),
  }),
  channels: Type.Optional(
    Type.Array(ChannelSpecSchema, {
      description: "Who may subscribe to this bridge's channels, and how much history each keeps (first match wins).",
      maxItems: 50,
      default: [],
      ...cel('self.all(c, self.exists_one(d, d.pattern == c.pattern))', 'channel patterns must be unique within a SocketBridge'),
    }),
  ),
};

/** The body of `PUT /v1/bridges/:name`: the bridge without the operator's own fields. */
export const BridgeBodySchema = Type.Object(bridgeFields, strict);

export const SecretRefSchema = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }) },
  { ...strict, description: "A Secret in the SocketBridge's namespace whose key `uri` holds an amqp:// or amqps:// URL." },
);

export const RabbitMQSpecSchema = Type.Object(
  { connectionSecret: Type.Optional(SecretRefSchema) },
  { ...strict, description: 'Where RabbitMQ is. In local mode (npm run bridge) the URL comes from SOCKETBRIDGE_RABBITMQ_URL instead.' },
);

/** The SocketBridge resource's `spec` (the CRD's, generated from this). */
export const SocketBridgeSpecSchema = Type.Object(
  {
    rabbitmq: Type.Optional(RabbitMQSpecSchema),
    ...bridgeFields,
    deletionPolicy: Type.Optional(
      stringEnum(DELETION_POLICIES, { description: 'On delete, retain the queues (and their messages) or delete them. The routes go either way.', default: 'retain' }),
    ),
  },
  strict,
);

/** As written (fields with a default are optional); `toBridge` (operator) applies the defaults. */
export type ExchangeType = (typeof EXCHANGE_TYPES)[number];
export type DeletionPolicy = (typeof DELETION_POLICIES)[number];
export type BindingSpec = Static<typeof BindingSpecSchema>;
export type RouteSpec = Static<typeof RouteSpecSchema>;
export type QueueSpec = Static<typeof QueueSpecSchema>;
export type QuorumSpec = Static<typeof QuorumSpecSchema>;
export type StreamSpec = Static<typeof StreamSpecSchema>;
export type HistorySpec = Static<typeof HistorySpecSchema>;
export type ChannelSpec = Static<typeof ChannelSpecSchema>;
export type SecretRef = Static<typeof SecretRefSchema>;
export type RabbitMQSpec = Static<typeof RabbitMQSpecSchema>;
export type SocketBridgeSpec = Static<typeof SocketBridgeSpecSchema>;
export type BridgeBody = Static<typeof BridgeBodySchema>;

/** The schema as plain JSON (TypeBox's markers are not enumerable), for generators. */
export function plainSchema(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}
