import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Registry } from 'prom-client';
import { env } from './config.js';

/**
 * The key that opens `/metrics`, `/cluster` and `/state` (`Authorization: Bearer <key>`): its own
 * secret, so Prometheus never holds a key that joins the cluster or administers bridges.
 */
export const opsEnv = {
  SOCKETBRIDGE_OPS_KEY: env.secret(16),
};

/**
 * Whether a presented key equals the expected one, in time that does not depend on where they
 * differ: both are hashed first, so the comparison runs over equal lengths whatever was sent.
 */
export function keyMatches(given: string | null | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The key of an `Authorization: Bearer <key>` header, or undefined. */
export function bearerKey(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

/**
 * The HTTP server of every cluster service: a client that dribbles its headers (10 s) or its
 * request (30 s) gets 408 and is closed, so it cannot hold a connection (and a file descriptor)
 * open for as long as it likes. Node checks these only every `connectionsCheckingInterval`
 * (30 s by default), hence the shorter interval. Upgraded WebSockets are no longer requests.
 */
export function createHardenedServer(): Server {
  return createServer({ headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 });
}

/** What a plain request to a WebSocket path gets: 426 at once, rather than a connection left hanging. */
export function upgradeRequired(res: ServerResponse): void {
  res.writeHead(426, { connection: 'close', upgrade: 'websocket', 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ error: 'UpgradeRequired', message: 'this path speaks WebSocket only' }));
}

export type Readiness = () => { ready: boolean; reason?: string };

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface OpsRoutesOptions {
  registry: Registry;
  readiness: Readiness;
  /**
   * `/metrics` and `routes` answer 401 without `Authorization: Bearer <opsKey>`. Every cluster
   * service passes its SOCKETBRIDGE_OPS_KEY; undefined leaves them open (the operator, until it has one).
   */
  opsKey?: string | undefined;
  /** Extra GET routes behind the ops key by exact path, such as the state server's `/state`. */
  routes?: Record<string, Route>;
  /** Extra GET routes open to all (probes that tell nothing private, such as upstream's `/health-check`). */
  openRoutes?: Record<string, Route>;
  /** The WebSocket path: a plain request there answers 426 Upgrade Required. */
  socketPath?: string;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The operational endpoints every cluster process serves beside its WebSocket path:
 * `/healthz` (the process answers), `/readyz` (it should get traffic), `/metrics`.
 * The cluster services share their port with their WebSocket server, which handles only its own path,
 * so these stay a plain request handler rather than a web framework.
 */
export function opsRequestHandler(options: OpsRoutesOptions): Route {
  // Maps, not object literals: a path such as `/constructor` or `/__proto__` must not find a route.
  const open = new Map<string, Route>([
    ['/healthz', (_req, res) => sendJson(res, 200, { status: 'ok' })],
    [
      '/readyz',
      (_req, res) => {
        const { ready, reason } = options.readiness();
        sendJson(res, ready ? 200 : 503, ready ? { status: 'ready' } : { status: 'not ready', reason });
      },
    ],
    ...Object.entries(options.openRoutes ?? {}),
  ]);
  const guarded = new Map<string, Route>([
    [
      '/metrics',
      async (_req, res) => {
        const body = await options.registry.metrics();
        res.writeHead(200, { 'content-type': options.registry.contentType });
        res.end(body);
      },
    ],
    ...Object.entries(options.routes ?? {}),
  ]);
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (options.socketPath && path.startsWith(options.socketPath)) {
      upgradeRequired(res);
      return;
    }
    const route = open.get(path) ?? guarded.get(path);
    if (!route) {
      sendJson(res, 404, { error: 'NotFound', message: `no route for ${req.method} ${path}` });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'MethodNotAllowed', message: `${path} answers GET only` });
      return;
    }
    if (!open.has(path) && options.opsKey !== undefined && !keyMatches(bearerKey(req), options.opsKey)) {
      res.setHeader('www-authenticate', 'Bearer');
      sendJson(res, 401, { error: 'Unauthorized', message: `${path} needs Authorization: Bearer <SOCKETBRIDGE_OPS_KEY>` });
      return;
    }
    try {
      await route(req, res);
    } catch (error) {
      if (!res.headersSent) sendJson(res, 500, { error: 'InternalError', message: String(error) });
      else res.destroy();
    }
  };
}

/** Listens and resolves with the bound port, so port 0 (an OS-chosen free port) works everywhere. */
export async function listen(server: Server | NetServer, port: number, host?: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
