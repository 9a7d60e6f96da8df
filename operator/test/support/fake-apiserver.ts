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
 * - secrets, events (core/v1) and leases (coordination.k8s.io/v1): get, list, create, update, merge-patch, delete;
 *   Leases and Events are validated as a real server validates them (422 Invalid).
 * - watches as a real server serves them: `allowWatchBookmarks` gets BOOKMARK events every
 *   `bookmarkIntervalMs`, `timeoutSeconds` ends the stream then (and `maxWatchSeconds` bounds
 *   every watch, as --min-request-timeout does), a watch without a resourceVersion (or "0")
 *   starts with an ADDED event per existing object.
 * - namespaces: DELETE /api/v1/namespaces/<ns> does what the namespace controller does: the
 *   namespace turns Terminating (creating in it answers 403 Forbidden), its Secrets go at once,
 *   every other object is deleted (objects with finalizers are only marked), and the namespace
 *   is gone once the last one is.
 * - clients are told apart by their bearer token (`kubeConfig(token)`); every request is recorded
 *   with its client and time.
 * - faults: 429 Too Many Requests with Retry-After for a client's next requests, refuse watches
 *   (500), end them, compact the history (410), hang every open watch
 *   (half-open: the connection stays, nothing more arrives), hang every request of one client
 *   (a dead connection: nothing is answered or applied; the request is dropped when the client
 *   gives up on it).
 *
 * - socketbridges are admitted as a real server admits a custom resource, from the CRD file itself:
 *   unknown fields pruned, defaults applied, the openAPIV3Schema validated and its
 *   x-kubernetes-validations evaluated by a CEL implementation (@marcbachmann/cel-js): 422 Invalid.
 *
 * - RBAC for the clients a test names (`authorize(token, grants)`, grants read from the manifests by
 *   test/support/rbac.ts): a request no rule allows answers 403 Forbidden, as the RBAC authorizer
 *   does; every allowed request is recorded with the rule that allowed it. Other clients (the
 *   test's own) are allowed everything.
 *
 * It does NOT paginate, or check the CRD's CEL cost budget. docs/operator.md says what that leaves
 * unproven.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { crdSchema, pruneAndDefault, validateDocument, type JsonSchema } from '../../src/crd.js';
import { allowedBy, type Attributes, type Grant } from './rbac.js';

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
  client: string;
  /** Half-open: nothing more is written to it. */
  hung: boolean;
  timers: NodeJS.Timeout[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  contentType: string | undefined;
  /** The bearer token the request carried ('' without one). */
  client: string;
  /** When it arrived (Date.now()). */
  at: number;
  /** True when it was held unanswered (its client was hung) and never applied. */
  hung: boolean;
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

let socketBridgeSchema: JsonSchema | undefined;

/** Pruning, defaulting, schema and CEL validation of a SocketBridge, from the CRD file: the admitted object, or 422. */
function admitSocketBridge(object: KubeObject): KubeObject {
  socketBridgeSchema ??= crdSchema();
  const admitted = pruneAndDefault(socketBridgeSchema, object) as KubeObject;
  admitted.metadata = object.metadata; // metadata is the API server's own, not the schema's
  const result = validateDocument(admitted);
  if (!result.ok) throw new HttpError(422, 'Invalid', `SocketBridge.socketbridge.io "${object.metadata?.name ?? ''}" is invalid: ${result.errors.join('; ')}`);
  return admitted;
}

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
  /** How often a watch that asked for bookmarks gets one (a real server: about a minute). */
  bookmarkIntervalMs = 1000;
  /** The longest any watch lasts before the server ends it (a real server: --min-request-timeout, 1800 s, randomized). */
  maxWatchSeconds = 1800;
  readonly requests: RecordedRequest[] = [];
  /** Clients (bearer tokens) whose requests are held unanswered. */
  private readonly hungClients = new Set<string>();
  private readonly held = new Set<ServerResponse>();
  /** Namespaces being deleted. */
  private readonly terminating = new Set<string>();
  /** Per client, how many more requests answer 429 Too Many Requests (API priority and fairness shedding load). */
  private readonly throttled = new Map<string, number>();
  /** RBAC per client (bearer token); a client without an entry may do anything. */
  private readonly rbac = new Map<string, Grant[]>();
  /** Per client, what RBAC decided: each request's attributes, and the rule that allowed it (undefined: 403). */
  readonly decisions: Array<{ client: string; request: Attributes; allowedBy?: string }> = [];

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
    for (const res of this.held) res.destroy();
    this.held.clear();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A KubeConfig for this server, built in code (plain HTTP needs skipTLSVerify in client-node); `token` names the client. */
  kubeConfig(token?: string): KubeConfig {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'test', ...(token ? { token } : {}) }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'test' }],
      currentContext: 'fake',
    });
    return config;
  }

  /** The same as a kubeconfig file, for operator processes (KUBECONFIG); `token` names the client. */
  writeKubeconfig(dir: string, token?: string): string {
    const path = join(dir, `kubeconfig-${this.port}${token ? `-${token}` : ''}.yaml`);
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
        token ? `    user: {token: "${token}"}` : '    user: {}',
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
    for (const watch of this.watches) {
      for (const timer of watch.timers) clearTimeout(timer);
      watch.res.end();
    }
    this.watches.clear();
  }

  /** Every open watch goes silent but stays open (a half-open connection): no events, no bookmarks, no end. New watches are served. */
  hangWatches(): number {
    let count = 0;
    for (const watch of this.watches) {
      if (watch.hung) continue;
      watch.hung = true;
      for (const timer of watch.timers) clearTimeout(timer);
      count++;
    }
    return count;
  }

  /** Every request of this client (bearer token) is held unanswered and not applied, and its open watches go silent: its connection is dead. */
  hangClient(client: string): void {
    this.hungClients.add(client);
    for (const watch of this.watches) {
      if (watch.client !== client) continue;
      watch.hung = true;
      for (const timer of watch.timers) clearTimeout(timer);
    }
  }

  /** The next `count` requests of this client answer 429 with Retry-After: 1, as API priority and fairness does under load. */
  throttle(client: string, count: number): void {
    this.throttled.set(client, count);
  }

  /** From now on, this client (bearer token) may do only what these grants allow. */
  authorize(client: string, grants: Grant[]): void {
    this.rbac.set(client, grants);
  }

  /** How many requests are held unanswered now. */
  get heldRequests(): number {
    return this.held.size;
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
    const client = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const hung = this.hungClients.has(client);
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query: url.search, contentType: req.headers['content-type'], client, at: Date.now(), hung });
    if (hung) {
      // A dead connection: nothing is answered; the request goes when the client gives up on it.
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      req.resume();
      return;
    }
    const throttled = this.throttled.get(client) ?? 0;
    if (throttled > 0) {
      this.throttled.set(client, throttled - 1);
      req.resume();
      const text = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Too many requests, please try again later.', reason: 'TooManyRequests', code: 429, details: { retryAfterSeconds: 1 } });
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    try {
      const namespaceRoute = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(url.pathname);
      if (namespaceRoute) {
        const namespaceName = decodeURIComponent(namespaceRoute[1]!);
        this.authorizeRequest(client, { verb: verbOf(req.method ?? 'GET', true, false), apiGroup: '', resource: 'namespaces', name: namespaceName });
        return this.send(res, 200, this.namespaceRequest(req.method ?? 'GET', namespaceName));
      }
      const route = this.route(url.pathname);
      if (!route) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`);
      const { type, namespace, name, subresource } = route;
      const watching = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
      this.authorizeRequest(client, {
        verb: verbOf(req.method ?? 'GET', name !== undefined, watching),
        apiGroup: type.prefix === '/api/v1' ? '' : type.prefix.split('/')[2]!,
        resource: subresource ? `${type.plural}/${subresource}` : type.plural,
        ...(namespace !== undefined ? { namespace } : {}),
        ...(name !== undefined ? { name } : {}),
      });
      const body = ['POST', 'PUT', 'PATCH'].includes(req.method ?? '') ? await this.readBody(req) : undefined;
      switch (req.method) {
        case 'GET':
          if (name) return this.send(res, 200, this.get(type, namespace!, name));
          if (watching) return this.watch(type, namespace, url.searchParams, client, res);
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

  private authorizeRequest(client: string, request: Attributes): void {
    const grants = this.rbac.get(client);
    if (!grants) return;
    const found = allowedBy(grants, request);
    this.decisions.push({ client, request, ...(found ? { allowedBy: found.grant.source } : {}) });
    if (found) return;
    const where = request.namespace === undefined ? 'at the cluster scope' : `in the namespace "${request.namespace}"`;
    throw new HttpError(
      403,
      'Forbidden',
      `${request.resource}${request.name ? ` "${request.name}"` : ''} is forbidden: User "${client}" cannot ${request.verb} resource "${request.resource}" in API group "${request.apiGroup}" ${where}`,
    );
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
      if (watch.hung) continue;
      if (watch.plural === type.plural && (watch.namespace === undefined || watch.namespace === namespace)) this.writeEvent(watch.res, entry.type, entry.object);
    }
  }

  private create(type: ResourceType, namespace: string, body: KubeObject): KubeObject {
    if (!body || typeof body !== 'object') throw new HttpError(400, 'BadRequest', 'no object in the body');
    const meta = (body.metadata ?? {}) as Meta;
    const name = meta.name ?? (meta.generateName ? `${meta.generateName}${randomUUID().slice(0, 5)}` : undefined);
    if (!name) throw new HttpError(422, 'Invalid', 'metadata.name: Required value');
    if (meta.namespace && meta.namespace !== namespace) throw new HttpError(400, 'BadRequest', 'the namespace of the object does not match the namespace on the request');
    if (this.terminating.has(namespace)) {
      throw new HttpError(403, 'Forbidden', `${type.plural} "${name}" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`);
    }
    validate(type, body);
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
    const stored = type.plural === 'socketbridges' ? admitSocketBridge(object) : object;
    this.objects.set(key, stored);
    this.record(type, namespace, 'ADDED', stored);
    return clone(stored);
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
    if (type.plural === 'socketbridges') {
      socketBridgeSchema ??= crdSchema();
      next = { ...(pruneAndDefault(socketBridgeSchema, next) as KubeObject), metadata: next.metadata };
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
    if (type.plural === 'socketbridges') result = admitSocketBridge(result);
    if (JSON.stringify({ ...result, metadata: { ...result.metadata, resourceVersion: '' } }) === JSON.stringify({ ...current, metadata: { ...current.metadata, resourceVersion: '' } })) {
      return clone(current); // a no-op write changes nothing, not even the resourceVersion
    }
    result.metadata.resourceVersion = String(++this.rv);
    if (result.metadata.deletionTimestamp && (result.metadata.finalizers ?? []).length === 0) {
      this.objects.delete(key);
      this.record(type, namespace, 'DELETED', result);
      this.namespaceProgress(namespace);
      return clone(result);
    }
    this.objects.set(key, result);
    this.record(type, namespace, 'MODIFIED', result);
    return clone(result);
  }

  private update(type: ResourceType, namespace: string, name: string, body: KubeObject, subresource: string | undefined): KubeObject {
    if (!body || typeof body !== 'object') throw new HttpError(400, 'BadRequest', 'no object in the body');
    validate(type, body);
    return this.write(type, namespace, name, body, subresource);
  }

  private patch(type: ResourceType, namespace: string, name: string, body: unknown, subresource: string | undefined): KubeObject {
    const current = this.get(type, namespace, name);
    const next = mergePatch(current, body) as KubeObject;
    // A resourceVersion in the patch is a precondition; without one the patch applies to whatever is current.
    const precondition = (body as { metadata?: Meta } | undefined)?.metadata?.resourceVersion;
    next.metadata = { ...(next.metadata ?? {}), resourceVersion: precondition ?? current.metadata.resourceVersion };
    validate(type, next);
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
    this.namespaceProgress(namespace);
    return gone;
  }

  // --- namespaces ------------------------------------------------------------------------------

  private namespaceObject(namespace: string): Json {
    const phase = this.terminating.has(namespace) ? 'Terminating' : 'Active';
    return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace }, status: { phase } };
  }

  private namespaceRequest(method: string, namespace: string): Json {
    const exists = this.terminating.has(namespace) || [...this.objects.values()].some((o) => o.metadata.namespace === namespace);
    if (method === 'GET') {
      if (!exists) throw new HttpError(404, 'NotFound', `namespaces "${namespace}" not found`);
      return this.namespaceObject(namespace);
    }
    if (method !== 'DELETE') throw new HttpError(405, 'MethodNotAllowed', `${method} on a namespace is not supported here`);
    if (!exists) throw new HttpError(404, 'NotFound', `namespaces "${namespace}" not found`);
    if (this.terminating.has(namespace)) return this.namespaceObject(namespace);
    this.terminating.add(namespace);
    // The namespace controller: Secrets go (they have no finalizers), then everything else is deleted;
    // custom resources with finalizers are only marked, and the namespace waits for them.
    const secretsFirst = [...RESOURCES].sort((a, b) => Number(b.plural === 'secrets') - Number(a.plural === 'secrets'));
    for (const type of secretsFirst) {
      for (const object of this.list(type.plural, namespace)) this.remove(type, namespace, object.metadata.name!);
    }
    const answer = this.namespaceObject(namespace);
    this.namespaceProgress(namespace);
    return answer;
  }

  /** A terminating namespace whose objects are all gone (Events the controller wrote meanwhile included) is gone too. */
  private namespaceProgress(namespace: string): void {
    if (!this.terminating.has(namespace)) return;
    const left = [...this.objects.values()].filter((o) => o.metadata.namespace === namespace);
    if (left.some((o) => o.kind !== 'Event')) return;
    for (const event of left) this.objects.delete(`events/${namespace}/${event.metadata.name}`);
    this.terminating.delete(namespace);
  }

  /** Whether the namespace still exists (Active or Terminating), as GET /api/v1/namespaces/<ns> tells. */
  namespaceExists(namespace: string): boolean {
    return this.terminating.has(namespace) || [...this.objects.values()].some((o) => o.metadata.namespace === namespace);
  }

  // --- watch -----------------------------------------------------------------------------------

  private writeEvent(res: ServerResponse, type: string, object: unknown): void {
    res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private watch(type: ResourceType, namespace: string | undefined, params: URLSearchParams, client: string, res: ServerResponse): void {
    if (this.refuseWatches) throw new HttpError(500, 'InternalError', 'watches are refused for this test');
    const resourceVersion = params.get('resourceVersion') ?? '';
    const timeoutParam = params.get('timeoutSeconds');
    const timeoutSeconds = Math.min(timeoutParam === null ? this.maxWatchSeconds : Number(timeoutParam), this.maxWatchSeconds);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) throw new HttpError(400, 'BadRequest', `timeoutSeconds: invalid value ${timeoutParam}`);
    const bookmarks = params.get('allowWatchBookmarks') === 'true';
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const inScope = (entryNamespace: string) => namespace === undefined || entryNamespace === namespace;
    if (resourceVersion === '' || resourceVersion === '0') {
      // "Get state and start at most recent": an ADDED event per existing object first.
      for (const object of this.list(type.plural, namespace)) this.writeEvent(res, 'ADDED', object);
    } else {
      const from = Number(resourceVersion);
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
        if (entry.rv > from && entry.plural === type.plural && inScope(entry.namespace)) this.writeEvent(res, entry.type, entry.object);
      }
    }
    const stream: WatchStream = { plural: type.plural, namespace, res, client, hung: false, timers: [] };
    const end = () => {
      for (const timer of stream.timers) clearTimeout(timer);
      this.watches.delete(stream);
    };
    if (timeoutSeconds > 0) {
      stream.timers.push(
        setTimeout(() => {
          end();
          res.end();
        }, timeoutSeconds * 1000),
      );
    }
    if (bookmarks) {
      const bookmark = () => {
        if (stream.hung) return;
        this.writeEvent(res, 'BOOKMARK', { kind: type.kind, apiVersion: type.apiVersion, metadata: { resourceVersion: String(this.rv) } });
        stream.timers.push(setTimeout(bookmark, this.bookmarkIntervalMs));
      };
      stream.timers.push(setTimeout(bookmark, this.bookmarkIntervalMs));
    }
    this.watches.add(stream);
    res.on('close', end);
  }
}

/** The RBAC verb of a request, as the API server derives it. */
function verbOf(method: string, named: boolean, watching: boolean): string {
  switch (method) {
    case 'GET':
      return watching ? 'watch' : named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

/** What a real API server checks of Leases and Events (their built-in validation), as 422 Invalid. */
function validate(type: ResourceType, object: KubeObject): void {
  const problems: string[] = [];
  if (type.plural === 'leases') {
    const spec = (object.spec ?? {}) as { leaseDurationSeconds?: unknown; holderIdentity?: unknown; leaseTransitions?: unknown };
    if (spec.leaseDurationSeconds !== undefined && !(Number.isInteger(spec.leaseDurationSeconds) && (spec.leaseDurationSeconds as number) > 0)) {
      problems.push('spec.leaseDurationSeconds: Invalid value: must be greater than 0');
    }
    if (spec.leaseTransitions !== undefined && !(Number.isInteger(spec.leaseTransitions) && (spec.leaseTransitions as number) >= 0)) {
      problems.push('spec.leaseTransitions: Invalid value: must be greater than or equal to 0');
    }
    if (spec.holderIdentity !== undefined && spec.holderIdentity !== null && typeof spec.holderIdentity !== 'string') problems.push('spec.holderIdentity: Invalid value: must be a string');
  }
  if (type.plural === 'events') {
    const event = object as { involvedObject?: { namespace?: string; name?: string }; type?: string; reason?: string; metadata: Meta };
    if (!event.involvedObject?.name) problems.push('involvedObject.name: Required value');
    if (event.involvedObject?.namespace !== undefined && event.metadata.namespace !== undefined && event.involvedObject.namespace !== event.metadata.namespace) {
      problems.push('involvedObject.namespace: Invalid value: does not match event.namespace');
    }
    if (event.type !== undefined && event.type !== 'Normal' && event.type !== 'Warning') problems.push(`type: Unsupported value: "${event.type}": supported values: "Normal", "Warning"`);
    if (!event.reason) problems.push('reason: Required value');
  }
  if (problems.length) throw new HttpError(422, 'Invalid', `${type.kind} "${object.metadata?.name ?? ''}" is invalid: ${problems.join(', ')}`);
}

function stripMetaAndStatus(object: KubeObject): Json {
  const { metadata: _metadata, status: _status, ...rest } = object;
  return rest;
}
