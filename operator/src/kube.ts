import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type KubernetesListObject,
  type V1Lease,
} from '@kubernetes/client-node';
import { withTimeout } from '@socketbridge/common';
import { GROUP, PLURAL, VERSION, type SocketBridge } from './resource.js';

/** Every API call the controller makes, in one place (docs/operator.md lists the RBAC they need). */
export class KubeApi {
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  private readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  constructor(
    readonly config: KubeConfig,
    private readonly requestTimeoutMs = 30000,
  ) {
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.core = config.makeApiClient(CoreV1Api);
    this.coordination = config.makeApiClient(CoordinationV1Api);
  }

  private timed<T>(promise: Promise<T>, what: string): Promise<T> {
    return withTimeout(promise, this.requestTimeoutMs, what);
  }

  /** The watch path for socketbridges in one namespace, or in all. */
  socketBridgePath(namespace?: string): string {
    return namespace ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
  }

  // socketbridges: list, watch (through the informer), patch; socketbridges/status: patch.
  async listSocketBridges(namespace?: string): Promise<KubernetesListObject<SocketBridge>> {
    const request = namespace
      ? this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
      : this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL });
    return (await this.timed(request, 'listing socketbridges')) as KubernetesListObject<SocketBridge>;
  }

  async patchSocketBridge(namespace: string, name: string, body: unknown): Promise<SocketBridge> {
    const request = this.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body }, this.mergePatch);
    return (await this.timed(request, `patching socketbridge ${namespace}/${name}`)) as SocketBridge;
  }

  async patchSocketBridgeStatus(namespace: string, name: string, body: unknown): Promise<SocketBridge> {
    const request = this.custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body }, this.mergePatch);
    return (await this.timed(request, `patching the status of socketbridge ${namespace}/${name}`)) as SocketBridge;
  }

  // secrets: get.
  async readSecretKey(namespace: string, name: string, key: string): Promise<string | undefined> {
    const secret = await this.timed(this.core.readNamespacedSecret({ name, namespace }), `reading secret ${namespace}/${name}`);
    const encoded = secret.data?.[key];
    if (encoded !== undefined) return Buffer.from(encoded, 'base64').toString('utf8');
    return secret.stringData?.[key];
  }

  // events: create, patch.
  async createEvent(namespace: string, event: CoreV1Event): Promise<CoreV1Event> {
    return this.timed(this.core.createNamespacedEvent({ namespace, body: event }), 'creating an event');
  }

  async patchEvent(namespace: string, name: string, body: unknown): Promise<CoreV1Event> {
    return this.timed(this.core.patchNamespacedEvent({ namespace, name, body }, this.mergePatch), 'patching an event');
  }

  // leases: get, create, update.
  async readLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    try {
      return await this.timed(this.coordination.readNamespacedLease({ namespace, name }), `reading lease ${namespace}/${name}`);
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async createLease(namespace: string, lease: V1Lease): Promise<V1Lease> {
    return this.timed(this.coordination.createNamespacedLease({ namespace, body: lease }), `creating lease ${namespace}/${lease.metadata?.name}`);
  }

  async replaceLease(namespace: string, name: string, lease: V1Lease): Promise<V1Lease> {
    return this.timed(this.coordination.replaceNamespacedLease({ namespace, name, body: lease }), `updating lease ${namespace}/${name}`);
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
