import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RedisClient } from '@socketbridge/common';
import { clientChannel } from '@socketbridge/common';
import { ClientStore, DuplicateEmailError } from '../clients.js';
import { ApiErrors } from '../errors.js';
import { ClientToken, ClientView, Login, NewClient } from '../schemas.js';
import type { TokenIssuer } from '../tokens.js';
import { errorResponses, needsRegistry } from './context.js';

export interface ClientRoutesOptions {
  redis: RedisClient;
  tokens: TokenIssuer;
}

/** Sign-up (`POST /v1/clients`, the seed's `create-channel-client`), sign-in (`POST /v1/tokens`), and the admin's client list. */
export const clientRoutes: FastifyPluginAsyncTypebox<ClientRoutesOptions> = async (app, { redis, tokens }) => {
  const clients = new ClientStore(redis);
  // The one sign-up/sign-in budget (the limiter is registered in app.ts): one handler, hence one
  // Redis counter per address, for all three routes; a per-route `config.rateLimit` gets a key of
  // its route's own (method and URL in it, which `groupId` does not merge).
  const signInBudget = app.rateLimit();
  const registry = needsRegistry(redis);

  const signUp = { onRequest: signInBudget, preHandler: registry, schema: { body: NewClient, response: { 201: ClientToken, ...errorResponses } } };
  for (const [url, summary] of [
    ['/v1/create-channel-client', 'Create a client and its channel (seed API)'],
    ['/v1/clients', 'Create a client and its channel'],
  ] as const) {
    app.post(url, { ...signUp, schema: { ...signUp.schema, summary } }, async (request, reply) => {
      try {
        const record = await clients.create(request.body);
        const channel = clientChannel(record.clientId);
        const token = await tokens.issue({ sub: record.clientId, channels: [channel] });
        return reply.code(201).send({ clientId: record.clientId, channel, token });
      } catch (error) {
        if (error instanceof DuplicateEmailError) throw new ApiErrors.DuplicateEmail(error.message);
        throw error;
      }
    });
  }

  app.post('/v1/tokens', {
    onRequest: signInBudget,
    preHandler: registry,
    schema: { summary: 'A token for a returning client (email and password)', body: Login, response: { 200: ClientToken, ...errorResponses } },
  }, async (request) => {
    const record = await clients.verify(request.body.email, request.body.password);
    if (!record) throw new ApiErrors.WrongCredentials('wrong email or password');
    const channel = clientChannel(record.clientId);
    return { clientId: record.clientId, channel, token: await tokens.issue({ sub: record.clientId, channels: [channel] }) };
  });

  /** Admin routes that read the registry: the key (admin.ts's guard), then Redis. */
  const adminRead = { config: { admin: true }, preHandler: registry };

  app.get('/v1/clients', {
    ...adminRead,
    schema: {
      summary: 'List clients (admin)',
      security: [{ apiKey: [] }],
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ clients: Type.Array(ClientView) }), ...errorResponses },
    },
  }, async (request) => ({ clients: await clients.list(request.query.limit) }));

  app.get('/v1/clients/:clientId', {
    ...adminRead,
    schema: {
      summary: 'One client (admin)',
      security: [{ apiKey: [] }],
      params: Type.Object({ clientId: Type.String({ maxLength: 64 }) }),
      response: { 200: ClientView, ...errorResponses },
    },
  }, async (request) => {
    const record = await clients.get(request.params.clientId);
    if (!record) throw new ApiErrors.ClientNotFound(`no client ${request.params.clientId}`);
    return record;
  });
};
