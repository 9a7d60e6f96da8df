import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import { CHANNEL_NAME, type ClusterLink, type Logger } from '@socketbridge/common';
import type { PublisherConfig } from '../config.js';
import { sendApiError } from '../errors.js';
import { TokenIssuer } from '../tokens.js';
import { consoleCss, consoleHtml, consoleJs } from './assets.js';
import { readTopology } from './topology.js';

export interface ConsoleDeps {
  config: PublisherConfig;
  link: ClusterLink;
  logger: Logger;
  /** The admin key check (admin.ts); routes with `config: { admin: true }` are guarded by the app's hook. */
  isAdminKey: (given: unknown) => boolean;
  /** The client library's browser bundle; default: services/client/dist/browser next to this build. */
  clientBundlePath?: string;
}

/** Tail tokens live an hour at most: long enough for a debugging session, short if one leaks. */
export const CONSOLE_TOKEN_TTL_SECONDS = 3600;
/** The `sub` of console tail tokens; they grant only the channels they name. */
export const CONSOLE_TOKEN_SUBJECT = 'socketbridge-console';

const defaultBundle = fileURLToPath(new URL('../../../client/dist/browser/socketbridge-client.js', import.meta.url));

const pageHeaders = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
};

const keyPage = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SocketBridge console</title></head>
<body style="font-family:system-ui,sans-serif;margin:40px">
<h1>SocketBridge console</h1><p>The console needs the admin API key (the publisher's SOCKETBRIDGE_API_KEY).</p>
<form method="get" action="/console"><input name="key" type="password" autocomplete="off" placeholder="admin API key" autofocus> <button>Open</button></form>
</body></html>`;

/**
 * The web console: `GET /console` (the page; the admin key as `x-api-key` or `?key=`, which the
 * page then keeps in memory), its script, style and the client library's browser bundle (code
 * only, no secrets: served without the key), `GET /console/api/cluster` (the topology) and
 * `POST /v1/console/token` (a token for tailing one channel).
 */
export const consolePlugin: FastifyPluginAsync<ConsoleDeps> = async (app, deps) => {
  const { config, link, logger, isAdminKey } = deps;
  const tokens = new TokenIssuer(config.SOCKETBRIDGE_AUTH_KEY, Math.min(CONSOLE_TOKEN_TTL_SECONDS, config.SOCKETBRIDGE_TOKEN_TTL_SECONDS));
  const bundlePath = deps.clientBundlePath ?? defaultBundle;
  let bundle: string | undefined;
  try {
    bundle = readFileSync(bundlePath, 'utf8');
  } catch (error) {
    logger.warn({ path: bundlePath, err: (error as Error).message }, 'console: no client bundle (npm run build makes it); the channel tail is off');
  }

  app.get('/console', { schema: { hide: true } }, async (request, reply) => {
    const query = request.query as Record<string, unknown>;
    // The page alone also takes the key as ?key= (a link to open), and answers 401 with a form to enter it.
    const authorized = isAdminKey(request.headers['x-api-key']) || isAdminKey(query.key);
    return reply
      .code(authorized ? 200 : 401)
      .headers(pageHeaders)
      .type('text/html; charset=utf-8')
      .send(authorized ? consoleHtml : keyPage);
  });
  app.get('/console/console.js', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('cache-control', 'no-cache').type('text/javascript; charset=utf-8').send(consoleJs),
  );
  app.get('/console/console.css', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('cache-control', 'no-cache').type('text/css; charset=utf-8').send(consoleCss),
  );
  app.get('/console/client.js', { schema: { hide: true } }, async (_request, reply) => {
    if (bundle === undefined) return sendApiError(reply, 'BundleNotBuilt', `the client bundle is not built (${bundlePath})`);
    return reply.header('cache-control', 'no-cache').type('text/javascript; charset=utf-8').send(bundle);
  });

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
