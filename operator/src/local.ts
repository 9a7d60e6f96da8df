import type { RedisClient } from '@socketbridge/common';
import { registryKeys } from '@socketbridge/common';
import { ReconcileError, type Reconciler } from './reconciler.js';
import { nextStatus } from './status.js';
import type { SocketBridge, SocketBridgeSpec, SocketBridgeStatus } from './resource.js';

/** Local mode keeps each resource's status here, so `npm run bridge -- get` can show it. */
export const LOCAL_STATUS_KEY = 'socketbridge:local-status';
/** Local mode owns its registry entries under this name (Kubernetes entries are `<namespace>/<name>`). */
export const LOCAL_OWNER = 'local';

export interface LocalRecord {
  name: string;
  /** Bumped when the applied spec differs from the last one, like metadata.generation. */
  generation: number;
  spec: SocketBridgeSpec;
  status: SocketBridgeStatus;
  updatedAt: string;
}

export interface LocalApplyResult {
  record: LocalRecord;
  error?: ReconcileError;
  changes: string[];
}

/**
 * The operator without Kubernetes: the same Reconciler, with the resource's status kept in Redis.
 * The bridge's registry name is the resource's `metadata.name` (the namespace, if any, is ignored).
 */
export class LocalBridges {
  constructor(
    private readonly redis: RedisClient,
    private readonly reconciler: Reconciler,
    private readonly rabbitUrl: string,
  ) {}

  async read(name: string): Promise<LocalRecord | undefined> {
    const text = await this.redis.hget(LOCAL_STATUS_KEY, name);
    return text ? (JSON.parse(text) as LocalRecord) : undefined;
  }

  async list(): Promise<LocalRecord[]> {
    const all = await this.redis.hgetall(LOCAL_STATUS_KEY);
    return Object.values(all)
      .map((text) => JSON.parse(text) as LocalRecord)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async apply(resource: SocketBridge): Promise<LocalApplyResult> {
    const name = resource.metadata.name!;
    const before = await this.read(name);
    const generation = before ? (JSON.stringify(before.spec) === JSON.stringify(resource.spec) ? before.generation : before.generation + 1) : 1;
    let error: ReconcileError | undefined;
    let changes: string[] = [];
    let status: SocketBridgeStatus;
    try {
      const result = await this.reconciler.apply({ name, owner: LOCAL_OWNER, spec: resource.spec, rabbitUrl: this.rabbitUrl });
      changes = result.changes;
      status = nextStatus(before?.status, { ready: true, reason: 'Reconciled', message: '', generation, queues: result.queues });
    } catch (caught) {
      error = caught instanceof ReconcileError ? caught : new ReconcileError('ReconcileFailed', (caught as Error).message);
      status = nextStatus(before?.status, { ready: false, reason: error.reason, message: error.message, generation });
    }
    const record: LocalRecord = { name, generation, spec: resource.spec, status, updatedAt: new Date().toISOString() };
    await this.redis.hset(LOCAL_STATUS_KEY, name, JSON.stringify(record));
    return { record, changes, ...(error ? { error } : {}) };
  }

  /**
   * Removes the bridge's routes and, with deletionPolicy delete, its queues. `spec` (from the file
   * given to `delete -f`) wins over the last applied one. Resolves false when nothing was known.
   */
  async delete(name: string, spec?: SocketBridgeSpec): Promise<{ found: boolean; deletedQueues: string[] }> {
    const before = await this.read(name);
    const inRegistry = await this.redis.hexists(registryKeys.bridges, name);
    if (!before && !inRegistry) return { found: false, deletedQueues: [] };
    const effective = spec ?? before?.spec;
    const { deletedQueues, owner } = await this.reconciler.remove({
      name,
      owner: LOCAL_OWNER,
      ...(effective ? { spec: effective } : {}),
      deletionPolicy: effective?.deletionPolicy ?? 'retain',
      rabbitUrl: this.rabbitUrl,
    });
    if (owner !== undefined && !before) throw new ReconcileError('NameConflict', `the registry entry ${name} belongs to ${owner}, not to local mode: left alone`);
    await this.redis.hdel(LOCAL_STATUS_KEY, name);
    return { found: true, deletedQueues };
  }
}
