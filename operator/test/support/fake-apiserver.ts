/**
 * A FAKE Kubernetes API server: a stand-in for tests, not Kubernetes. No real API server runs in
 * this repository's tests; this one implements, over plain HTTP, only what the SocketBridge
 * controller uses, with the semantics it relies on:
 *
 * - socketbridges (socketbridge.io/v1alpha1): list and watch (all namespaces or one) with
 *   resourceVersion, replay from a resourceVersion, 410 Gone (an ERROR event with code 410, as a
 *   real API server sends it) for a resourceVersion older than the last compaction; get, create,
 *   update, merge-patch, delete; the status subresource (the main endpoint ignores status, the
 *   status endpoint ignores everything else); metadata.generation bumped on spec changes;
 *   finalizers and deletionTimestamp (delete with finalizers only marks; the object goes when the
 *   last finalizer does; no new finalizers while deleting); optimistic concurrency (409 when a
 *   write names a stale resourceVersion).
 * - secrets, events (core/v1) and leases (coordination.k8s.io/v1): get, list, create, update, merge-patch, delete.
 *
 * It does NOT validate against the CRD schema, apply its defaults, run CEL rules, authenticate,
 * authorize (RBAC), or paginate. docs/operator.md says what that leaves unproven.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

type Json = Record<string, unknown>;
type Meta = {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  finalizers?: string[];
  generateName?: string;
};
type KubeObject = Json & { metadata: Meta };

interface ResourceType {
  plural: string;
  prefix: string;
  apiVersion: string;
  kind: string;
  /** Has a status subresource and a generation (custom resources here). */
  statusSubresource: boolean;
}

const RESOURCES: ResourceType[] = [
  { plural: 'socketbridges', prefix: '/apis/socketbridge.io/v1alpha1', apiVersion: 'socketbridge.io/v1alpha1', kind: 'SocketBridge', statusSubresource: true },
  { plural: 'secrets', prefix: '/api/v1', apiVersion: 'v1', kind: 'Secret', statusSubresource: false },
  { plural: 'events', prefix: '/api/v1', apiVersion: 'v1', kind: 'Event', statusSubresource: false },
  { plural: 'leases', prefix: '/apis/coordination.k8s.io/v1', apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', statusSubresource: false },
];

interface HistoryEntry {
  rv: number;
  plural: string;
  namespace: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

interface WatchStream {
  plural: string;
  namespace: string | undefined;
  res: ServerResponse;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  contentType: string | undefined;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const clone = <T>(value: T): T => structuredClone(value);

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const result: Json = target !== null && typeof target === 'object' && !Array.isArray(target) ? clone(target as Json) : {};
  for (const [key, value] of Object.entries(patch as Json)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

export class FakeApiServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly objects = new Map<string, KubeObject>();
  private history: HistoryEntry[] = [];
  private readonly watches = new Set<WatchStream>();
  private rv = 1000;
  private compactedRv = 0;
  port = 0;
  /** While true, watch requests get 500 (an API server in trouble); lists still work. */
  refuseWatches = false;
  readonly requests: RecordedRequest[] = [];

  constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    this.closeWatches();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A KubeConfig for this server, built in code (plain HTTP needs skipTLSVerify in client-node). */
  kubeConfig(): KubeConfig {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'test' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'test' }],
      currentContext: 'fake',
    });
    return config;
  }

  /** The same as a kubeconfig file, for operator processes (KUBECONFIG). */
  writeKubeconfig(dir: string): string {
    const path = join(dir, `kubeconfig-${this.port}.yaml`);
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `  - name: fake`,
        `    cluster: {server: "${this.url}", insecure-skip-tls-verify: true}`,
        'users:',
        '  - name: test',
        '    user: {}',
        'contexts:',
        '  - name: fake',
        '    context: {cluster: fake, user: test}',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    return path;
  }

  // --- controls for tests ----------------------------------------------------------------------

  /** Ends every open watch stream (as an API server restart or a load balancer timeout would). */
  closeWatches(): void {
    for (const watch of this.watches) watch.res.end();
    this.watches.clear();
  }

  /** Forgets the event history: a watch from any older resourceVersion now gets 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history = [];
  }

  get openWatches(): number {
    return this.watches.size;
  }

  object(plural: string, namespace: string, name: string): KubeObject | undefined {
    const found = this.objects.get(`${plural}/${namespace}/${name}`);
    return found ? clone(found) : undefined;
  }

  list(plural: string, namespace?: string): KubeObject[] {
    return [...this.objects.entries()]
      .filter(([key]) => key.startsWith(`${plural}/${namespace === undefined ? '' : `${namespace}/`}`))
      .map(([, object]) => clone(object));
  }

  // --- HTTP ------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.search, contentType: req.headers['content-type'] });
    try {
      const route = this.route(url.pathname);
      if (!route) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`);
      const { type, namespace, name, subresource } = route;
      const body = ['POST', 'PUT', 'PATCH'].includes(req.method ?? '') ? await this.readBody(req) : undefined;
      switch (req.method) {
        case 'GET':
          if (name) return this.send(res, 200, this.get(type, namespace!, name));
          if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') return this.watch(type, namespace, url.searchParams.get('resourceVersion') ?? '', res);
          return this.send(res, 200, this.listResponse(type, namespace));
        case 'POST':
          if (name || !namespace) throw new HttpError(405, 'MethodNotAllowed', 'POST goes to the collection');
          return this.send(res, 201, this.create(type, namespace, body as KubeObject));
        case 'PUT':
          return this.send(res, 200, this.update(type, namespace!, name!, body as KubeObject, subresource));
        case 'PATCH': {
          const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
          if (contentType !== 'application/merge-patch+json') {
            throw new HttpError(415, 'UnsupportedMediaType', `the fake API server takes application/merge-patch+json only; got ${contentType || 'none'}`);
          }
          return this.send(res, 200, this.patch(type, namespace!, name!, body, subresource));
        }
        case 'DELETE':
          return this.send(res, 200, this.remove(type, namespace!, name!));
        default:
          throw new HttpError(405, 'MethodNotAllowed', `${req.method} is not supported`);
      }
    } catch (error) {
      const e = error instanceof HttpError ? error : new HttpError(500, 'InternalError', (error as Error).message);
      this.send(res, e.code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: e.message, reason: e.reason, code: e.code });
    }
  }

  private route(path: string): { type: ResourceType; namespace?: string; name?: string; subresource?: string } | undefined {
    for (const type of RESOURCES) {
      if (path === `${type.prefix}/${type.plural}`) return { type };
      const match = new RegExp(`^${type.prefix}/namespaces/([^/]+)/${type.plural}(?:/([^/]+))?(?:/([^/]+))?$`).exec(path);
      if (match) {
        const [, namespace, name, subresource] = match;
        if (subresource && !(subresource === 'status' && type.statusSubresource)) return undefined;
        return { type, namespace: decodeURIComponent(namespace!), ...(name ? { name: decodeURIComponent(name) } : {}), ...(subresource ? { subresource } : {}) };
      }
    }
    return undefined;
  }

  private async readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return text ? JSON.parse(text) : undefined;
    } catch {
      throw new HttpError(400, 'BadRequest', 'the body is not JSON');
    }
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  // --- storage ---------------------------------------------------------------------------------

  private key(type: ResourceType, namespace: string, name: string): string {
    return `${type.plural}/${namespace}/${name}`;
  }

  private get(type: ResourceType, namespace: string, name: string): KubeObject {
    const object = this.objects.get(this.key(type, namespace, name));
    if (!object) throw new HttpError(404, 'NotFound', `${type.plural} "${name}" not found`);
    return clone(object);
  }

  private listResponse(type: ResourceType, namespace: string | undefined): Json {
    return { apiVersion: type.apiVersion, kind: `${type.kind}List`, metadata: { resourceVersion: String(this.rv) }, items: this.list(type.plural, namespace) };
  }

  private record(type: ResourceType, namespace: string, kind: HistoryEntry['type'], object: KubeObject): void {
    const entry: HistoryEntry = { rv: Number(object.metadata.resourceVersion), plural: type.plural, namespace, type: kind, object: clone(object) };
    this.history.push(entry);
    for (const watch of this.watches) {
      if (watch.plural === type.plural && (watch.namespace === undefined || watch.namespace === namespace)) this.writeEvent(watch.res, entry.type, entry.object);
    }
  }

  private create(type: ResourceType, namespace: string, body: KubeObject): KubeObject {
    if (!body || typeof body !== 'object') throw new HttpError(400, 'BadRequest', 'no object in the body');
    const meta = (body.metadata ?? {}) as Meta;
    const name = meta.name ?? (meta.generateName ? `${meta.generateName}${randomUUID().slice(0, 5)}` : undefined);
    if (!name) throw new HttpError(422, 'Invalid', 'metadata.name: Required value');
    if (meta.namespace && meta.namespace !== namespace) throw new HttpError(400, 'BadRequest', 'the namespace of the object does not match the namespace on the request');
    const key = this.key(type, namespace, name);
    if (this.objects.has(key)) throw new HttpError(409, 'AlreadyExists', `${type.plural} "${name}" already exists`);
    const object: KubeObject = {
      ...clone(body),
      apiVersion: type.apiVersion,
      kind: type.kind,
      metadata: {
        ...clone(meta),
        name,
        namespace,
        uid: randomUUID(),
        resourceVersion: String(++this.rv),
        creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
        ...(type.statusSubresource ? { generation: 1 } : {}),
      },
    };
    delete object.metadata.deletionTimestamp;
    if (type.statusSubresource) delete object.status;
    this.objects.set(key, object);
    this.record(type, namespace, 'ADDED', object);
    return clone(object);
  }

  /** Applies `next` (a full object) over the stored one with the semantics of the main endpoint or the status subresource. */
  private write(type: ResourceType, namespace: string, name: string, next: KubeObject, subresource: string | undefined): KubeObject {
    const key = this.key(type, namespace, name);
    const current = this.objects.get(key);
    if (!current) throw new HttpError(404, 'NotFound', `${type.plural} "${name}" not found`);
    const wanted = next.metadata?.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      throw new HttpError(409, 'Conflict', `Operation cannot be fulfilled on ${type.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    let result: KubeObject;
    if (subresource === 'status') {
      result = { ...clone(current), status: clone(next.status) };
      if (next.status === undefined) delete result.status;
    } else {
      result = { ...clone(next), apiVersion: type.apiVersion, kind: type.kind };
      // Fields the client cannot set.
      result.metadata = {
        ...clone(next.metadata ?? {}),
        name,
        namespace,
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        ...(current.metadata.deletionTimestamp ? { deletionTimestamp: current.metadata.deletionTimestamp, deletionGracePeriodSeconds: 0 } : {}),
      };
      if (!current.metadata.deletionTimestamp) delete result.metadata.deletionTimestamp;
      if (type.statusSubresource) {
        if (current.status === undefined) delete result.status;
        else result.status = clone(current.status);
        const specChanged = JSON.stringify(stripMetaAndStatus(current)) !== JSON.stringify(stripMetaAndStatus(result));
        result.metadata.generation = (current.metadata.generation ?? 1) + (specChanged ? 1 : 0);
      }
      if (current.metadata.deletionTimestamp) {
        const added = (result.metadata.finalizers ?? []).filter((f) => !(current.metadata.finalizers ?? []).includes(f));
        if (added.length) throw new HttpError(422, 'Invalid', `metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`);
      }
    }
    if (JSON.stringify({ ...result, metadata: { ...result.metadata, resourceVersion: '' } }) === JSON.stringify({ ...current, metadata: { ...current.metadata, resourceVersion: '' } })) {
      return clone(current); // a no-op write changes nothing, not even the resourceVersion
    }
    result.metadata.resourceVersion = String(++this.rv);
    if (result.metadata.deletionTimestamp && (result.metadata.finalizers ?? []).length === 0) {
      this.objects.delete(key);
      this.record(type, namespace, 'DELETED', result);
      return clone(result);
    }
    this.objects.set(key, result);
    this.record(type, namespace, 'MODIFIED', result);
    return clone(result);
  }

  private update(type: ResourceType, namespace: string, name: string, body: KubeObject, subresource: string | undefined): KubeObject {
    if (!body || typeof body !== 'object') throw new HttpError(400, 'BadRequest', 'no object in the body');
    return this.write(type, namespace, name, body, subresource);
  }

  private patch(type: ResourceType, namespace: string, name: string, body: unknown, subresource: string | undefined): KubeObject {
    const current = this.get(type, namespace, name);
    const next = mergePatch(current, body) as KubeObject;
    // A resourceVersion in the patch is a precondition; without one the patch applies to whatever is current.
    const precondition = (body as { metadata?: Meta } | undefined)?.metadata?.resourceVersion;
    next.metadata = { ...(next.metadata ?? {}), resourceVersion: precondition ?? current.metadata.resourceVersion };
    return this.write(type, namespace, name, next, subresource);
  }

  private remove(type: ResourceType, namespace: string, name: string): KubeObject {
    const key = this.key(type, namespace, name);
    const current = this.objects.get(key);
    if (!current) throw new HttpError(404, 'NotFound', `${type.plural} "${name}" not found`);
    if ((current.metadata.finalizers ?? []).length > 0) {
      if (current.metadata.deletionTimestamp) return clone(current);
      const marked: KubeObject = clone(current);
      marked.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      marked.metadata.deletionGracePeriodSeconds = 0;
      if (type.statusSubresource) marked.metadata.generation = (current.metadata.generation ?? 1) + 1;
      marked.metadata.resourceVersion = String(++this.rv);
      this.objects.set(key, marked);
      this.record(type, namespace, 'MODIFIED', marked);
      return clone(marked);
    }
    this.objects.delete(key);
    const gone = clone(current);
    gone.metadata.resourceVersion = String(++this.rv);
    this.record(type, namespace, 'DELETED', gone);
    return gone;
  }

  // --- watch -----------------------------------------------------------------------------------

  private writeEvent(res: ServerResponse, type: string, object: unknown): void {
    res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private watch(type: ResourceType, namespace: string | undefined, resourceVersion: string, res: ServerResponse): void {
    if (this.refuseWatches) throw new HttpError(500, 'InternalError', 'watches are refused for this test');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const from = resourceVersion === '' || resourceVersion === '0' ? this.rv : Number(resourceVersion);
    if (!Number.isFinite(from) || from < this.compactedRv) {
      this.writeEvent(res, 'ERROR', {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `too old resource version: ${resourceVersion} (${this.compactedRv})`,
        reason: 'Expired',
        code: 410,
      });
      res.end();
      return;
    }
    for (const entry of this.history) {
      if (entry.rv > from && entry.plural === type.plural && (namespace === undefined || entry.namespace === namespace)) this.writeEvent(res, entry.type, entry.object);
    }
    const stream: WatchStream = { plural: type.plural, namespace, res };
    this.watches.add(stream);
    res.on('close', () => this.watches.delete(stream));
  }
}

function stripMetaAndStatus(object: KubeObject): Json {
  const { metadata: _metadata, status: _status, ...rest } = object;
  return rest;
}
