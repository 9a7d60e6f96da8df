import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Registry } from 'prom-client';

export type Readiness = () => { ready: boolean; reason?: string };

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface OpsRoutesOptions {
  registry: Registry;
  readiness: Readiness;
  /** Extra GET routes by exact path, such as the state server's `/state`. */
  routes?: Record<string, Route>;
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
  const routes: Record<string, Route> = {
    '/healthz': (_req, res) => sendJson(res, 200, { status: 'ok' }),
    '/readyz': (_req, res) => {
      const { ready, reason } = options.readiness();
      sendJson(res, ready ? 200 : 503, ready ? { status: 'ready' } : { status: 'not ready', reason });
    },
    '/metrics': async (_req, res) => {
      const body = await options.registry.metrics();
      res.writeHead(200, { 'content-type': options.registry.contentType });
      res.end(body);
    },
    ...options.routes,
  };
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = routes[path];
    if (!route) {
      sendJson(res, 404, { error: 'NotFound', message: `no route for ${req.method} ${path}` });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'MethodNotAllowed', message: `${path} answers GET only` });
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
