import Fastify, { LogController } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { RedisClient } from '@socketbridge/common';
import { MAX_CHANNEL_NAME_LENGTH, createHardenedServer, type ClusterLink, type Logger, type Registry, type BridgeWatcher } from '@socketbridge/common';
import { adminGuard, adminKeyCheck } from './admin.js';
import type { PublisherConfig } from './config.js';
import { consolePlugin } from './console/index.js';
import type { RabbitConsumer } from './consumer.js';
import { apiErrorOf, errorBody, kindOfStatus, sendApiError } from './errors.js';
import type { Pipeline } from './pipeline.js';
import { bridgeRoutes } from './routes/bridges.js';
import { channelInfoRoutes } from './routes/channel-info.js';
import { ClusterQueries } from './cluster-queries.js';
import { clientRoutes } from './routes/clients.js';
import { REGISTRY_DOWN } from './routes/context.js';
import { opsRoutes } from './routes/ops.js';
import { publishRoutes } from './routes/publish.js';
import { serverApiRoutes } from './routes/server-api.js';
import { ErrorBody } from './schemas.js';
import type { TokenIssuer } from './tokens.js';
import { validatorCompiler } from './validation.js';

export interface AppDeps {
  config: PublisherConfig;
  logger: Logger;
  metrics: Registry;
  redis: RedisClient;
  tokens: TokenIssuer;
  consumer: RabbitConsumer;
  pipeline: Pipeline;
  watcher: BridgeWatcher;
  link: ClusterLink;
  version: string;
}

export async function buildApp(deps: AppDeps) {
  const { config, redis, tokens, consumer, pipeline, watcher, link } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    // The cluster services' server: clients that dribble headers (10 s) or a request (30 s) are cut off with 408.
    serverFactory: (handler) => createHardenedServer().on('request', handler),
    // No line per request (metrics count them); Fastify 5.x deprecated the top-level option for this.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.SOCKETBRIDGE_BODY_LIMIT_BYTES,
    // Path parameters longer than this get 414 before any schema runs; Fastify's default (100) is
    // below the longest channel name, so /v1/channels/<a valid 150-character name> was refused.
    // Twice the limit: a name just too long gets the schema's 400 with its reason.
    maxParamLength: 2 * MAX_CHANNEL_NAME_LENGTH,
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

  // The routes, one plugin per area. Each inherits the hooks above: helmet, the admin guard, the
  // error and not-found handlers, the validator and the shared Error schema.
  await app.register(opsRoutes, { opsKey: config.SOCKETBRIDGE_OPS_KEY, version: deps.version, redis, consumer, link, metrics: deps.metrics });
  await app.register(clientRoutes, { redis, tokens });
  await app.register(bridgeRoutes, { redis, watcher, consumer });
  await app.register(serverApiRoutes, { link, redis, revocationTtlSeconds: config.SOCKETBRIDGE_REVOCATION_TTL_SECONDS ?? config.SOCKETBRIDGE_TOKEN_TTL_SECONDS });
  const queries = new ClusterQueries(link, redis, deps.logger, config.SOCKETBRIDGE_CLUSTER_QUERY_TIMEOUT_MS);
  await app.register(channelInfoRoutes, { queries, redis, watcher, metrics: deps.metrics });
  await app.register(publishRoutes, {
    pipeline,
    watcher,
    defaultHistory: { size: config.SOCKETBRIDGE_HISTORY_SIZE, ttlSeconds: config.SOCKETBRIDGE_HISTORY_TTL_SECONDS },
    testMode: config.SOCKETBRIDGE_TEST_MODE,
  });

  // The web console at /console (docs/observability.md).
  await app.register(consolePlugin, { config, link, logger: deps.logger, isAdminKey });

  return app;
}
