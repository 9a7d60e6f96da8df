import { Type, type Static } from '@fastify/type-provider-typebox';
import { BridgeBodySchema, MAX_CHANNEL_NAME_LENGTH } from '@socketbridge/common';

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

// The characters of CHANNEL_NAME (channels.ts); its reserved names are refused where a channel is used.
const channelName = Type.String({ pattern: `^[A-Za-z0-9_.:@-]{1,${MAX_CHANNEL_NAME_LENGTH}}$` });

export const ChannelParams = Type.Object({ channel: channelName }, { additionalProperties: false });

/**
 * A bridge's body is the one bridge schema in common (bridge-schema.ts), which the CRD is
 * generated from too: the same fields, defaults (filled in by AJV) and limits on both ways in.
 */
export const BridgeBody = BridgeBodySchema;
export type BridgeBody = Static<typeof BridgeBodySchema>;

const resourceName = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 });

export const BridgeName = Type.Object({ name: resourceName }, { additionalProperties: false });

export const PublishBody = Type.Object(
  { channel: channelName, data: Type.Unknown(), id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
  { additionalProperties: false },
);

export const Published = Type.Object({ id: Type.String(), offset: Type.String(), channel: Type.String() });
