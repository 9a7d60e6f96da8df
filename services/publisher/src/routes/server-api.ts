import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { CONTROL_CHANNEL, MAX_CONTROL_CLIENT_ID, MAX_JTI, registryKeys, type ClusterLink, type ControlMessage } from '@socketbridge/common';
import type { Redis } from 'ioredis';
import { ApiErrors } from '../errors.js';
import { REGISTRY_DOWN, errorResponses } from './context.js';

export interface ServerApiRoutesOptions {
  link: ClusterLink;
  /** The registry's client (a single node or a cluster: the keys share one hash tag). */
  redis: Pick<Redis, 'multi'> & { readonly status: string };
  /**
   * How long a revocation by client (or by a `jti` without its `exp`) is kept: the longest token
   * lifetime a worker accepts (SOCKETBRIDGE_REVOCATION_TTL_SECONDS, else SOCKETBRIDGE_TOKEN_TTL_SECONDS).
   */
  revocationTtlSeconds: number;
}

/**
 * The server API (admin): orders every worker carries out at once. Each is a control message the
 * publisher publishes on the cluster's reserved control channel (common/src/control.ts), which
 * every worker listens on; the answer comes once the channel's broker shard took it.
 */
export const serverApiRoutes: FastifyPluginAsyncTypebox<ServerApiRoutesOptions> = async (app, { link, redis, revocationTtlSeconds }) => {
  async function order(message: ControlMessage): Promise<void> {
    try {
      await link.publish(CONTROL_CHANNEL, [message]);
    } catch (error) {
      throw new ApiErrors.PublishFailed(`the cluster did not take the order: ${(error as Error).message}`);
    }
  }

  app.post('/v1/clients/:clientId/disconnect', {
    config: { admin: true },
    schema: {
      summary: 'Disconnect every socket of a client, on every worker (admin)',
      description:
        'Closes each socket whose token names the client (`sub`) with close code 4102 (`reconnect: true`: socketcluster-client reconnects) ' +
        'or 4501 (the default: it stays closed). The order reaches every worker through the cluster within a second. A client with no open ' +
        'socket is not an error: the client may come from an identity provider this publisher has no record of.',
      security: [{ apiKey: [] }],
      params: Type.Object({ clientId: Type.String({ minLength: 1, maxLength: MAX_CONTROL_CLIENT_ID }) }),
      body: Type.Object({ reconnect: Type.Optional(Type.Boolean({ default: false })) }, { additionalProperties: false }),
      response: { 202: Type.Object({ clientId: Type.String(), reconnect: Type.Boolean() }), ...errorResponses },
    },
  }, async (request, reply) => {
    const { clientId } = request.params;
    const reconnect = request.body.reconnect === true;
    await order({ type: 'disconnect', clientId, reconnect });
    return reply.code(202).send({ clientId, reconnect });
  });

  app.post('/v1/tokens/revoke', {
    config: { admin: true },
    preHandler: async () => {
      if (redis.status !== 'ready') throw new ApiErrors.RegistryUnavailable(REGISTRY_DOWN);
    },
    schema: {
      summary: 'Revoke a token, or every token of a client issued until a time (admin)',
      description:
        '`{jti, exp?}` revokes one token, kept until its `exp` (epoch seconds) when given; `{clientId, before?}` every token of the client ' +
        'issued at or before `before` (epoch seconds, default now). Kept in Redis until then, or for the longest token lifetime a worker ' +
        'accepts (SOCKETBRIDGE_REVOCATION_TTL_SECONDS); every worker refuses such a token at the handshake and at #authenticate, and closes ' +
        'the sockets open with it at once (close code 4501).',
      security: [{ apiKey: [] }],
      body: Type.Union([
        Type.Object({
          jti: Type.String({ minLength: 1, maxLength: MAX_JTI }),
          // The revoked token's own `exp`: no token is refused for longer than it would live.
          exp: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 40 })),
        }, { additionalProperties: false }),
        Type.Object({
          clientId: Type.String({ minLength: 1, maxLength: MAX_CONTROL_CLIENT_ID }),
          before: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 40 })),
        }, { additionalProperties: false }),
      ]),
      response: {
        202: Type.Object({ jti: Type.Optional(Type.String()), clientId: Type.Optional(Type.String()), before: Type.Optional(Type.Integer()), until: Type.Integer() }),
        ...errorResponses,
      },
    },
  }, async (request, reply) => {
    const body = request.body;
    const now = Date.now();
    // Until the token's own exp when known (a second at least: Redis' shortest expiry), else for the longest lifetime.
    const until = 'jti' in body && body.exp !== undefined ? Math.max(body.exp * 1000, now + 1000) : now + revocationTtlSeconds * 1000;
    const ttlSeconds = Math.ceil((until - now) / 1000);
    let message: ControlMessage;
    const multi = redis.multi();
    if ('jti' in body) {
      message = { type: 'revoke', jti: body.jti, until };
      multi.set(registryKeys.revokedToken(body.jti), '1', 'EX', ttlSeconds);
      multi.zadd(registryKeys.revocations, until, `jti:${body.jti}`);
    } else {
      const before = body.before ?? Math.floor(now / 1000);
      message = { type: 'revoke', clientId: body.clientId, before, until };
      multi.set(registryKeys.revokedClient(body.clientId), String(before), 'EX', ttlSeconds);
      multi.zadd(registryKeys.revocations, until, `client:${body.clientId}`);
    }
    multi.zremrangebyscore(registryKeys.revocations, '-inf', now);
    const results = await multi.exec();
    const failed = results?.find(([error]) => error)?.[0];
    if (!results || failed) throw new ApiErrors.RegistryUnavailable(`the revocation was not stored: ${failed?.message ?? 'the transaction was aborted'}`);
    await order(message);
    const { type: _type, ...answer } = message;
    return reply.code(202).send(answer);
  });
};
