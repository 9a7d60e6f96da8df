import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import {
  CHANNEL_NAME,
  bearerKey,
  bridgeProblems,
  createHardenedServer,
  putUnownedBridge,
  removeUnownedBridge,
  clientChannel,
  findPolicy,
  keyMatches,
  registryKeys,
  type Bridge,
  type ClusterLink,
  type Logger,
  type Registry,
  type RegistryWatcher,
} from '@socketbridge/common';
import { adminGuard, adminKeyCheck } from './admin.js';
import { ClientStore, DuplicateEmailError } from './clients.js';
import type { PublisherConfig } from './config.js';
import { consolePlugin } from './console/index.js';
import { ApiErrors, apiErrorOf, errorBody, kindOfStatus, sendApiError } from './errors.js';
import type { RabbitConsumer } from './consumer.js';
import type { Pipeline } from './pipeline.js';
import { BridgeBody, BridgeName, ClientToken, ClientView, ErrorBody, Login, NewClient, PublishBody, Published } from './schemas.js';
import type { TokenIssuer } from './tokens.js';
import { validatorCompiler } from './validation.js';

export interface AppDeps {
  config: PublisherConfig;
  logger: Logger;
  metrics: Registry;
  redis: Redis;
  tokens: TokenIssuer;
  consumer: RabbitConsumer;
  pipeline: Pipeline;
  watcher: RegistryWatcher;
  link: ClusterLink;
  version: string;
}

const REGISTRY_DOWN = 'the registry (Redis) is unavailable: retry shortly';

export async function buildApp(deps: AppDeps) {
  const { config, redis, tokens, consumer, pipeline, watcher, link } = deps;
  const clients = new ClientStore(redis);
  const app = Fastify({
    loggerInstance: deps.logger,
    // The cluster services' server: clients that dribble headers (10 s) or a request (30 s) are cut off with 408.
    serverFactory: (handler) => createHardenedServer().on('request', handler),
    // No line per request (metrics count them); Fastify 5.x deprecated the top-level option for this.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.SOCKETBRIDGE_BODY_LIMIT_BYTES,
    // Which X-Forwarded-For hops name the client (request.ip, the sign-in budget's key); none by default.
    trustProxy: config.SOCKETBRIDGE_TRUST_PROXY,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // Only JSON bodies: anything else is 415, not a text body that then fails validation.
  app.removeContentTypeParser('text/plain');

  // Security headers on every answer (nosniff, frame and referrer policies, HSTS behind TLS); the CSP
  // for JSON answers allows nothing. /docs and /console set their own, allowing their own files.
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"], frameAncestors: ["'none'"] } },
  });
  const isAdminKey = adminKeyCheck(config.SOCKETBRIDGE_API_KEY);
  app.addHook('onRequest', adminGuard(isAdminKey));

  await app.register(swagger, {
    openapi: {
      info: { title: 'SocketBridge publisher', version: deps.version, description: 'RabbitMQ to WebSocket channels: clients, tokens, bridges, publish.' },
      components: { securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' } } },
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // Swagger UI's page loads only its own scripts and styles and fetches /docs/json: no inline
    // script, nothing from elsewhere (no validator badge), and the one <style> its bundle injects, by
    // hash (a new swagger-ui version may change it: test/security.test.ts loads /docs in Chromium).
    staticCSP:
      "default-src 'none'; base-uri 'none'; connect-src 'self'; font-src 'self' data:; form-action 'none'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='",
  });
  // One sign-up/sign-in budget per client address, counted in Redis so every replica shares it
  // (keys `<SOCKETBRIDGE_RATE_LIMIT_PREFIX><address>`). Fails closed: when Redis cannot count, the
  // limiter's error answers 503, so an outage never opens unlimited password guessing; nothing is
  // lost by it, as these routes need Redis to check or store a client anyway.
  await app.register(rateLimit, {
    global: false,
    redis,
    nameSpace: config.SOCKETBRIDGE_RATE_LIMIT_PREFIX,
    max: config.SOCKETBRIDGE_AUTH_RATE_LIMIT,
    timeWindow: '1 minute',
    skipOnError: false,
  });
  // One handler, hence one counter, for the three routes: a per-route `config.rateLimit` gets a Redis
  // key of its route's own (method and URL in it, which `groupId` does not merge).
  const signInBudget = app.rateLimit();
  app.addSchema(ErrorBody);

  app.setNotFoundHandler((request, reply) => {
    void sendApiError(reply, 'NoRoute', `no route for ${request.method} ${request.url.split('?')[0]}`);
  });
  // Every error answers from the catalogue (errors.ts): ours by their code, Fastify's and plugins' by status.
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    const known = apiErrorOf(error);
    if (known) return reply.code(known.status).send({ error: known.error, message: error.message });
    if (error.validation) return reply.code(400).send(errorBody('BadRequest', error.message));
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send(errorBody(kindOfStatus(error.statusCode), error.message));
    }
    if (redis.status !== 'ready') return sendApiError(reply, 'RegistryUnavailable', REGISTRY_DOWN);
    request.log.error({ err: error, url: request.url }, 'request failed');
    return sendApiError(reply, 'InternalError', 'internal error');
  });

  const needsRegistry = async () => {
    if (redis.status !== 'ready') throw new ApiErrors.RegistryUnavailable(REGISTRY_DOWN);
  };
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 429: ErrorBody, 503: ErrorBody };

  // --- operational -------------------------------------------------------------------------
  const readiness = () => {
    const reasons: string[] = [];
    if (redis.status !== 'ready') reasons.push('redis unavailable');
    if (consumer.isWanted && !consumer.isConnected) reasons.push('rabbitmq not connected');
    if (link.brokerURIs().length === 0) reasons.push('no cluster brokers known');
    return reasons;
  };
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const reasons = readiness();
    return reply.code(reasons.length ? 503 : 200).send(reasons.length ? { status: 'not ready', reasons } : { status: 'ready' });
  });
  // Ops endpoints want the ops key (Prometheus holds it; it opens nothing else), checked before anything runs.
  const ops = async (request: FastifyRequest) => {
    if (!keyMatches(bearerKey(request.raw), config.SOCKETBRIDGE_OPS_KEY)) {
      throw new ApiErrors.OpsKeyRequired(`${request.url.split('?')[0]} needs Authorization: Bearer <SOCKETBRIDGE_OPS_KEY>`);
    }
  };
  app.get('/cluster', { onRequest: ops, schema: { hide: true } }, async () => ({
    instanceId: link.instanceId,
    brokerURIs: link.brokerURIs(),
    workerURIs: link.workerURIs(),
  }));
  app.get('/metrics', { onRequest: ops, schema: { hide: true } }, async (_request, reply) => {
    return reply.type(deps.metrics.contentType).send(await deps.metrics.metrics());
  });

  // --- the seed's API, kept as it was -----------------------------------------------------
  app.get('/', { schema: { summary: 'Is the publisher up' } }, async () => ({ service: 'socketbridge-publisher', version: deps.version, status: 'up' }));

  app.get('/v1/create-rabbit-ch', { schema: { summary: 'Start consuming RabbitMQ (idempotent)' } }, async () => {
    consumer.start();
    return { status: 'consuming', ...consumer.status() };
  });

  const createClient = async (body: { name: string; email: string; password: string }, reply: FastifyReply) => {
    await needsRegistry();
    try {
      const record = await clients.create(body);
      const channel = clientChannel(record.clientId);
      const token = await tokens.issue({ sub: record.clientId, channels: [channel] });
      return reply.code(201).send({ clientId: record.clientId, channel, token });
    } catch (error) {
      if (error instanceof DuplicateEmailError) throw new ApiErrors.DuplicateEmail(error.message);
      throw error;
    }
  };
  const clientRoute = {
    onRequest: signInBudget,
    schema: { body: NewClient, response: { 201: ClientToken, ...errors } },
  };
  app.post('/v1/create-channel-client', { ...clientRoute, schema: { ...clientRoute.schema, summary: 'Create a client and its channel (seed API)' } }, (request, reply) =>
    createClient(request.body, reply),
  );
  app.post('/v1/clients', { ...clientRoute, schema: { ...clientRoute.schema, summary: 'Create a client and its channel' } }, (request, reply) =>
    createClient(request.body, reply),
  );

  // The seed's fake-data route exists only in test mode, and even then it takes the admin key: it
  // can write into any channel, `client.<id>` included, as `POST /v1/publish` can.
  if (config.SOCKETBRIDGE_TEST_MODE) app.get('/v1/publish-data-over-ch', {
    config: { admin: true },
    schema: {
      summary: 'Publish fake data (test mode only)',
      querystring: Type.Object({
        channel: Type.String({ pattern: '^[A-Za-z0-9_.:@-]{1,200}$', default: 'broadcast' }),
        count: Type.Integer({ minimum: 1, maximum: 1000, default: 1 }),
      }, { additionalProperties: false }),
    },
  }, async (request) => {
    const { channel, count } = request.query;
    const envelopes = [];
    for (let i = 0; i < count; i++) {
      envelopes.push(await publish(channel, { fake: true, n: i, value: Math.round(Math.random() * 10000) / 100 }));
    }
    return { published: envelopes.length, channel, envelopes };
  });

  // --- resources -------------------------------------------------------------------------
  app.post('/v1/tokens', {
    onRequest: signInBudget,
    schema: { summary: 'A token for a returning client (email and password)', body: Login, response: { 200: ClientToken, ...errors } },
  }, async (request) => {
    await needsRegistry();
    const record = await clients.verify(request.body.email, request.body.password);
    if (!record) throw new ApiErrors.WrongCredentials('wrong email or password');
    const channel = clientChannel(record.clientId);
    return { clientId: record.clientId, channel, token: await tokens.issue({ sub: record.clientId, channels: [channel] }) };
  });

  app.get('/v1/clients', {
    config: { admin: true },
    preHandler: [needsRegistry],
    schema: {
      summary: 'List clients (admin)',
      security: [{ apiKey: [] }],
      querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ clients: Type.Array(ClientView) }), ...errors },
    },
  }, async (request) => ({ clients: await clients.list(request.query.limit) }));

  app.get('/v1/clients/:clientId', {
    config: { admin: true },
    preHandler: [needsRegistry],
    schema: {
      summary: 'One client (admin)',
      security: [{ apiKey: [] }],
      params: Type.Object({ clientId: Type.String({ maxLength: 64 }) }),
      response: { 200: ClientView, ...errors },
    },
  }, async (request) => {
    const record = await clients.get(request.params.clientId);
    if (!record) throw new ApiErrors.ClientNotFound(`no client ${request.params.clientId}`);
    return record;
  });

  app.get('/v1/channels', {
    config: { admin: true },
    schema: { summary: 'Channel policies in force (admin)', security: [{ apiKey: [] }] },
  }, async () => ({ policies: watcher.policies() }));

  app.get('/v1/bridges', {
    config: { admin: true },
    preHandler: [needsRegistry],
    schema: { summary: 'Bridges in the registry (admin)', security: [{ apiKey: [] }] },
  }, async () => {
    await watcher.reload();
    return { bridges: watcher.bridges(), consumer: consumer.status() };
  });

  app.get('/v1/bridges/:name', {
    config: { admin: true },
    preHandler: [needsRegistry],
    schema: { summary: 'One bridge (admin)', security: [{ apiKey: [] }], params: BridgeName },
  }, async (request) => {
    const text = await redis.hget(registryKeys.bridges, request.params.name);
    if (!text) throw new ApiErrors.BridgeNotFound(`no bridge ${request.params.name}`);
    return JSON.parse(text) as Bridge;
  });

  app.put('/v1/bridges/:name', {
    config: { admin: true },
    preHandler: [needsRegistry],
    schema: { summary: 'Create or replace a bridge (admin; the operator uses this registry too)', security: [{ apiKey: [] }], params: BridgeName, body: BridgeBody },
  }, async (request, reply) => {
    const bridge: Bridge = { name: request.params.name, ...(request.body as Omit<Bridge, 'name'>) };
    const problems = bridgeProblems(bridge);
    if (problems.length) throw new ApiErrors.InvalidBridge(problems.join('; '));
    const written = await putUnownedBridge(redis, bridge);
    if (!written.ok) throw ownedBridge(bridge.name, written.owner);
    await watcher.reload();
    return reply.code(200).send(bridge);
  });

  app.delete('/v1/bridges/:name', {
    config: { admin: true },
    preHandler: [needsRegistry],
    schema: { summary: 'Remove a bridge (admin; its queues stay)', security: [{ apiKey: [] }], params: BridgeName },
  }, async (request, reply) => {
    const removed = await removeUnownedBridge(redis, request.params.name);
    if (!removed.ok) throw ownedBridge(request.params.name, removed.owner);
    if (!removed.changed) throw new ApiErrors.BridgeNotFound(`no bridge ${request.params.name}`);
    await watcher.reload();
    return reply.code(204).send();
  });

  /** A bridge a SocketBridge resource (or file) owns changes only there: its owner's next resync would undo a REST write. */
  function ownedBridge(name: string, owner: string): Error {
    return new ApiErrors.BridgeOwned(`bridge ${name} is owned by ${owner} (the operator's SocketBridge resource or npm run bridge): change it there`);
  }

  async function publish(channel: string, data: unknown, id?: string) {
    if (!CHANNEL_NAME.test(channel)) throw new ApiErrors.InvalidChannel(`${channel} is not a channel name`);
    try {
      const history = findPolicy(watcher.policies(), channel)?.policy.history ?? {
        size: config.SOCKETBRIDGE_HISTORY_SIZE,
        ttlSeconds: config.SOCKETBRIDGE_HISTORY_TTL_SECONDS,
      };
      const envelope = await pipeline.publish({ channel, id: id ?? randomUUID(), ts: Date.now(), data, history, idempotent: id !== undefined });
      return { id: envelope.id, offset: envelope.offset, channel };
    } catch (error) {
      throw new ApiErrors.PublishFailed(`could not publish: ${(error as Error).message}`);
    }
  }

  app.post('/v1/publish', {
    config: { admin: true },
    schema: { summary: 'Publish on a channel over HTTP (admin)', security: [{ apiKey: [] }], body: PublishBody, response: { 202: Published, ...errors } },
  }, async (request, reply) => reply.code(202).send(await publish(request.body.channel, request.body.data, request.body.id)));

  // The web console at /console (docs/observability.md).
  await app.register(consolePlugin, { config, link, logger: deps.logger, isAdminKey });

  return app;
}
