import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  Observable,
  type ConfigurationOptions,
  type CoreV1Event,
  type KubeConfig,
  type KubernetesListObject,
  type V1Lease,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type SocketBridge } from './resource.js';

/** A request given up on: its deadline passed, or the caller's signal aborted it (the HTTP request was aborted too). */
export class RequestAborted extends Error {}

/** Thrown, without a request being sent, for a write while this replica may not write (it lost the Lease). */
export class NotLeading extends Error {}

/** Per-request options for client-node's generated APIs: an AbortSignal on the fetch, and optionally a Content-Type. */
function requestOptions(signal: AbortSignal, contentType?: string): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(signal);
          if (contentType) context.setHeaderParam('Content-Type', contentType);
          return new Observable(Promise.resolve(context));
        },
        post: (context) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/**
 * Every API call the controller makes, in one place (docs/operator.md lists the RBAC they need).
 * Every request has a deadline that aborts it (the socket is given up, not just the promise), and
 * writes to socketbridges and Events pass the fence first: once leadership is lost they are not sent.
 */
export class KubeApi {
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  /** False once this replica must not write (set by leader election). */
  fence: () => boolean = () => true;

  constructor(
    readonly config: KubeConfig,
    private readonly requestTimeoutMs = 30000,
  ) {
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.core = config.makeApiClient(CoreV1Api);
    this.coordination = config.makeApiClient(CoordinationV1Api);
  }

  /** Runs one request with an aborting deadline (and the caller's signal, if any). */
  private async call<T>(what: string, send: (options: ConfigurationOptions) => Promise<T>, opts: { contentType?: string; signal?: AbortSignal; write?: boolean } = {}): Promise<T> {
    if (opts.write && !this.fence()) throw new NotLeading(`not sent: ${what}: this replica no longer leads`);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new RequestAborted(`timed out after ${this.requestTimeoutMs} ms ${what}`)), this.requestTimeoutMs);
    const signal = opts.signal ? AbortSignal.any([controller.signal, opts.signal]) : controller.signal;
    try {
      return await send(requestOptions(signal, opts.contentType));
    } catch (error) {
      if (signal.aborted) {
        const reason: unknown = signal.reason;
        throw reason instanceof Error ? reason : new RequestAborted(`aborted ${what}`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The watch path for socketbridges in one namespace, or in all. */
  socketBridgePath(namespace?: string): string {
    return namespace ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
  }

  // socketbridges: list, watch (through the informer), patch; socketbridges/status: patch.
  async listSocketBridges(namespace?: string): Promise<KubernetesListObject<SocketBridge>> {
    const list = await this.call('listing socketbridges', (options) =>
      namespace
        ? this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL }, options)
        : this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }, options),
    );
    return list as KubernetesListObject<SocketBridge>;
  }

  async patchSocketBridge(namespace: string, name: string, body: unknown): Promise<SocketBridge> {
    const patched = await this.call(`patching socketbridge ${namespace}/${name}`, (options) => this.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body }, options), {
      contentType: PatchStrategy.MergePatch,
      write: true,
    });
    return patched as SocketBridge;
  }

  async patchSocketBridgeStatus(namespace: string, name: string, body: unknown): Promise<SocketBridge> {
    const patched = await this.call(
      `patching the status of socketbridge ${namespace}/${name}`,
      (options) => this.custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body }, options),
      { contentType: PatchStrategy.MergePatch, write: true },
    );
    return patched as SocketBridge;
  }

  // secrets: get.
  async readSecretKey(namespace: string, name: string, key: string): Promise<string | undefined> {
    const secret = await this.call(`reading secret ${namespace}/${name}`, (options) => this.core.readNamespacedSecret({ name, namespace }, options));
    const encoded = secret.data?.[key];
    if (encoded !== undefined) return Buffer.from(encoded, 'base64').toString('utf8');
    return secret.stringData?.[key];
  }

  // events: create, patch.
  async createEvent(namespace: string, event: CoreV1Event): Promise<CoreV1Event> {
    return this.call('creating an event', (options) => this.core.createNamespacedEvent({ namespace, body: event }, options), { write: true });
  }

  async patchEvent(namespace: string, name: string, body: unknown): Promise<CoreV1Event> {
    return this.call('patching an event', (options) => this.core.patchNamespacedEvent({ namespace, name, body }, options), { contentType: PatchStrategy.MergePatch, write: true });
  }

  // leases: get, create, update. Leader election passes its renew deadline as `signal`.
  async readLease(namespace: string, name: string, signal?: AbortSignal): Promise<V1Lease | undefined> {
    try {
      return await this.call(`reading lease ${namespace}/${name}`, (options) => this.coordination.readNamespacedLease({ namespace, name }, options), signal ? { signal } : {});
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async createLease(namespace: string, lease: V1Lease, signal?: AbortSignal): Promise<V1Lease> {
    return this.call(`creating lease ${namespace}/${lease.metadata?.name}`, (options) => this.coordination.createNamespacedLease({ namespace, body: lease }, options), signal ? { signal } : {});
  }

  async replaceLease(namespace: string, name: string, lease: V1Lease, signal?: AbortSignal): Promise<V1Lease> {
    return this.call(`updating lease ${namespace}/${name}`, (options) => this.coordination.replaceNamespacedLease({ namespace, name, body: lease }, options), signal ? { signal } : {});
  }
}

/** The HTTP status of a failed API call (ApiException) or watch (statusCode), if any. */
export function statusCode(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const e = error as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

/** One line for logs and conditions: the API server's own message when it sent a Status. */
export function apiMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const body = error.body as { message?: string } | string | undefined;
    const text = typeof body === 'string' ? safeJson(body)?.message ?? body : body?.message;
    return `${error.code}${text ? `: ${text}` : ''}`;
  }
  const e = error as Error & { errors?: Error[] };
  if (!e?.message && e?.errors?.length) return e.errors.map((inner) => inner.message).join('; ');
  return e?.message ?? String(error);
}

function safeJson(text: string): { message?: string } | undefined {
  try {
    return JSON.parse(text) as { message?: string };
  } catch {
    return undefined;
  }
}
