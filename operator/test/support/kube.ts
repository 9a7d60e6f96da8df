import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoordinationV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Lease } from '@kubernetes/client-node';
import { repoRoot, spawnNode, waitFor, type ManagedProcess } from '@socketbridge/devkit';
import { FakeApiServer } from './fake-apiserver.js';
import { TEST_REDIS_URL } from './services.js';
import { GROUP, PLURAL, VERSION, readyCondition, type SocketBridge, type SocketBridgeSpec } from '../../src/resource.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** What a test does as a user would with kubectl: through @kubernetes/client-node, over HTTP, against the fake API server. */
export class KubeUser {
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;

  constructor(readonly fake: FakeApiServer) {
    const config = fake.kubeConfig();
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.core = config.makeApiClient(CoreV1Api);
    this.coordination = config.makeApiClient(CoordinationV1Api);
  }

  async createSecret(namespace: string, name: string, uri: string): Promise<void> {
    await this.core.createNamespacedSecret({ namespace, body: { metadata: { name, namespace }, data: { uri: Buffer.from(uri).toString('base64') } } });
  }

  async create(namespace: string, name: string, spec: SocketBridgeSpec): Promise<SocketBridge> {
    return (await this.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'SocketBridge', metadata: { name, namespace }, spec },
    })) as SocketBridge;
  }

  async patchSpec(namespace: string, name: string, spec: Partial<SocketBridgeSpec>): Promise<SocketBridge> {
    return (await this.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { spec } }, mergePatch)) as SocketBridge;
  }

  async delete(namespace: string, name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name });
  }

  async get(namespace: string, name: string): Promise<SocketBridge | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name })) as SocketBridge;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  async lease(namespace: string, name: string): Promise<V1Lease | undefined> {
    try {
      return await this.coordination.readNamespacedLease({ namespace, name });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }

  /** Polls until the SocketBridge's Ready condition has `status` (and `extra` holds); returns it. */
  async waitForReady(namespace: string, name: string, status: 'True' | 'False', timeoutMs = 20000, extra: (b: SocketBridge) => boolean = () => true): Promise<SocketBridge> {
    let last: SocketBridge | undefined;
    try {
      await waitFor(
        async () => {
          last = await this.get(namespace, name);
          return last !== undefined && readyCondition(last.status)?.status === status && extra(last);
        },
        timeoutMs,
        `socketbridge ${namespace}/${name} Ready=${status}`,
        100,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen: ${JSON.stringify(last?.status ?? null)} (generation ${last?.metadata.generation})`);
    }
    return last!;
  }

  async waitForGone(namespace: string, name: string, timeoutMs = 20000): Promise<void> {
    await waitFor(async () => (await this.get(namespace, name)) === undefined, timeoutMs, `socketbridge ${namespace}/${name} to be gone`, 100);
  }

  events(namespace: string, name?: string): Array<{ type: string; reason: string; message: string; count: number; reportingInstance?: string }> {
    return this.fake
      .list('events', namespace)
      .filter((e) => name === undefined || (e.involvedObject as { name?: string }).name === name) as unknown as Array<{
      type: string;
      reason: string;
      message: string;
      count: number;
      reportingInstance?: string;
    }>;
  }
}

/** A scratch directory for kubeconfig files, removed by `dispose`. */
export function scratchDir(): { path: string; dispose: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'socketbridge-operator-test-'));
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Timers short enough for tests; the defaults are for production. A leader that cannot renew
 * within the renew deadline exits, so tests that are not about leadership give it room on a busy
 * machine; leader tests set their own, shorter ones.
 */
export const fastOperatorTimers: Record<string, string> = {
  SOCKETBRIDGE_LEASE_DURATION_MS: '10000',
  SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS: '6000',
  SOCKETBRIDGE_LEASE_RETRY_MS: '500',
  SOCKETBRIDGE_RESYNC_MS: '2000',
  SOCKETBRIDGE_BACKOFF_BASE_MS: '200',
  SOCKETBRIDGE_BACKOFF_MAX_MS: '1500',
  SOCKETBRIDGE_RECONCILE_TIMEOUT_MS: '5000',
};

/** An operator process (operator/dist/main.js) pointed at the fake API server through KUBECONFIG. */
export function startOperator(label: string, kubeconfig: string, env: Record<string, string> = {}): ManagedProcess {
  // SOCKETBRIDGE_TEST_OPERATOR_MAIN runs another build (such as the previous commit's, to show a test fails there).
  return spawnNode(label, process.env.SOCKETBRIDGE_TEST_OPERATOR_MAIN ?? `${repoRoot}operator/dist/main.js`, {
    KUBECONFIG: kubeconfig,
    SOCKETBRIDGE_REDIS_URL: TEST_REDIS_URL,
    SOCKETBRIDGE_OPERATOR_PORT: '0',
    SOCKETBRIDGE_LEASE_NAMESPACE: 'socketbridge-system',
    POD_NAME: label,
    ...fastOperatorTimers,
    ...env,
  });
}
