import { Type, type Static } from '@fastify/type-provider-typebox';

/** JSON Schemas for every route (validated by Fastify, published at /docs). */

const printable = '^[^\\u0000-\\u001f\\u007f]+$';

export const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() }, { $id: 'Error' });

export const NewClient = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, pattern: printable }),
    email: Type.String({ format: 'email', maxLength: 254 }),
    password: Type.String({ minLength: 8, maxLength: 256 }),
  },
  { additionalProperties: false },
);

export const Login = Type.Object(
  {
    email: Type.String({ format: 'email', maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 256 }),
  },
  { additionalProperties: false },
);

export const ClientToken = Type.Object({ clientId: Type.String(), channel: Type.String(), token: Type.String() });

export const ClientView = Type.Object({ clientId: Type.String(), name: Type.String(), email: Type.String(), createdAt: Type.String() });

const channelName = Type.String({ pattern: '^[A-Za-z0-9_.:@-]{1,200}$' });

export const HistoryPolicy = Type.Object(
  { size: Type.Integer({ minimum: 1, maximum: 1_000_000 }), ttlSeconds: Type.Integer({ minimum: 1, maximum: 30 * 86400 }) },
  { additionalProperties: false },
);

export const ChannelPolicy = Type.Object(
  {
    pattern: Type.String({ minLength: 1, maxLength: 200 }),
    access: Type.Union([Type.Literal('public'), Type.Literal('authenticated'), Type.Literal('owner')]),
    history: Type.Optional(HistoryPolicy),
  },
  { additionalProperties: false },
);

const resourceName = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 });
const amqpName = Type.String({ minLength: 1, maxLength: 255, pattern: printable });

export const BridgeBody = Type.Object(
  {
    queues: Type.Array(
      Type.Object(
        {
          name: amqpName,
          durable: Type.Boolean({ default: true }),
          singleActiveConsumer: Type.Boolean({ default: false }),
          bindings: Type.Array(
            Type.Object(
              {
                exchange: amqpName,
                type: Type.Union([Type.Literal('direct'), Type.Literal('topic'), Type.Literal('fanout'), Type.Literal('headers')]),
                routingKey: Type.String({ maxLength: 255 }),
              },
              { additionalProperties: false },
            ),
            { maxItems: 100 },
          ),
          route: Type.Object({ channel: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 100 },
    ),
    channels: Type.Array(ChannelPolicy, { maxItems: 100 }),
  },
  { additionalProperties: false },
);
export type BridgeBody = Static<typeof BridgeBody>;

export const BridgeName = Type.Object({ name: resourceName }, { additionalProperties: false });

export const PublishBody = Type.Object(
  { channel: channelName, data: Type.Unknown(), id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
  { additionalProperties: false },
);

export const Published = Type.Object({ id: Type.String(), offset: Type.String(), channel: Type.String() });
