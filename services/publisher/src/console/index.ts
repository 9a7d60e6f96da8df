import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import fastifyStatic from '@fastify/static';
import { Type } from '@fastify/type-provider-typebox';
import { CHANNEL_NAME, type ClusterLink, type Logger } from '@socketbridge/common';
import type { PublisherConfig } from '../config.js';
import { sendApiError } from '../errors.js';
import { TokenIssuer } from '../tokens.js';
import { readTopology } from './topology.js';

export interface ConsoleDeps {
  config: PublisherConfig;
  link: ClusterLink;
  logger: Logger;
  /** The admin key check (admin.ts); routes with `config: { admin: true }` are guarded by the app's hook. */
  isAdminKey: (given: unknown) => boolean;
}

/** Tail tokens live an hour at most: long enough for a debugging session, short if one leaks. */
export const CONSOLE_TOKEN_TTL_SECONDS = 3600;
/** The `sub` of console tail tokens; they grant only the channels they name. */
export const CONSOLE_TOKEN_SUBJECT = 'socketbridge-console';

/** The console's Vite build (services/publisher/console, `npm run build`): console/dist beside this dist. */
const buildDir = fileURLToPath(new URL('../../console/dist/', import.meta.url));

const pageHeaders = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
};

/**
 * A built page, read on each request: two small files, and a rebuild (`tilt up`'s live update)
 * shows at once, with the new content-hashed asset names it refers to. Undefined when not built.
 */
async function readPage(buildDir: string, page: 'index.html' | 'key.html'): Promise<string | undefined> {
  return readFile(join(buildDir, page), 'utf8').catch(() => undefined);
}

/**
 * The web console: `GET /console` (the page; the admin key as `x-api-key` or `?key=`, which the
 * page then keeps in memory), its scripts and styles under `/console/assets/` (code only, no
 * secrets: served without the key; content-hashed names, so cached for good), `GET
 * /console/api/cluster` (the topology) and `POST /v1/console/token` (a token for tailing one channel).
 */
export const consolePlugin: FastifyPluginAsync<ConsoleDeps> = async (app, deps) => {
  const { config, link, logger, isAdminKey } = deps;
  const tokens = new TokenIssuer(config.SOCKETBRIDGE_AUTH_KEY, Math.min(CONSOLE_TOKEN_TTL_SECONDS, config.SOCKETBRIDGE_TOKEN_TTL_SECONDS));
  const built = existsSync(join(buildDir, 'assets'));
  if (!built) logger.warn({ path: buildDir }, 'console: not built (npm run build makes it); /console is off');

  app.get('/console', { schema: { hide: true } }, async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    // The page alone also takes the key as ?key= (a link to open), and answers 401 with a form to enter it.
    const authorized = isAdminKey(request.headers['x-api-key']) || isAdminKey(query.key);
    const page = await readPage(buildDir, authorized ? 'index.html' : 'key.html');
    if (page === undefined) return sendApiError(reply, 'ConsoleNotBuilt', `the console is not built (${buildDir})`);
    return reply.code(authorized ? 200 : 401).headers(pageHeaders).type('text/html; charset=utf-8').send(page);
  });
  if (built) {
    await app.register(fastifyStatic, {
      root: join(buildDir, 'assets'),
      prefix: '/console/assets/',
      // Swagger UI registers @fastify/static too: this instance adds no reply decorators.
      decorateReply: false,
      index: false,
      // Content-hashed names: a changed file has a new name, so browsers may keep these for good.
      immutable: true,
      maxAge: '365d',
      schemaHide: true,
    });
  }

  app.get('/console/api/cluster', { config: { admin: true }, schema: { hide: true } }, async () =>
    readTopology({
      stateHost: config.SCC_STATE_SERVER_HOST,
      statePort: config.SCC_STATE_SERVER_PORT,
      selfInstanceId: link.instanceId,
      tailUrl: config.SOCKETBRIDGE_CONSOLE_WORKER_URL,
      opsKey: config.SOCKETBRIDGE_OPS_KEY,
    }),
  );

  app.post('/v1/console/token', {
    config: { admin: true },
    schema: {
      summary: 'A token granting exactly one channel, for the console to tail it (admin)',
      security: [{ apiKey: [] }],
      body: Type.Object({ channel: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
    },
  }, async (request, reply) => {
    const { channel } = request.body as { channel: string };
    if (!CHANNEL_NAME.test(channel)) {
      return sendApiError(reply, 'InvalidChannel', `${channel} is not a channel name`);
    }
    const token = await tokens.issue({ sub: CONSOLE_TOKEN_SUBJECT, channels: [channel] });
    logger.info({ channel }, 'console: tail token issued');
    return { channel, token, expiresIn: Math.min(CONSOLE_TOKEN_TTL_SECONDS, config.SOCKETBRIDGE_TOKEN_TTL_SECONDS) };
  });
};
