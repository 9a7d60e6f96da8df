import { Watch } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, metricDefs, type Logger, type Registry } from '@socketbridge/common';
import { registryName } from './bridge.js';
import type { EventRecorder } from './events.js';
import { Informer } from './informer.js';
import { apiMessage, statusCode, type KubeApi } from './kube.js';
import { ReconcileError, type Reconciler } from './reconciler.js';
import { API_VERSION, FINALIZER, KIND, readyCondition, type SocketBridge, type SocketBridgeStatus } from './resource.js';
import { nextStatus, sameStatus } from './status.js';
import { WorkQueue } from './workqueue.js';

export interface ControllerOptions {
  /** Watch one namespace, or all when unset. */
  namespace?: string;
  /** Used when a SocketBridge names no connection Secret. */
  fallbackRabbitUrl?: string;
  workers: number;
  resyncMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Server-side watch timeout (each watch asks for between this and twice this). */
  watchTimeoutSeconds: number;
  /** A watch with no event (bookmarks included) for this long is restarted. */
  watchIdleMs: number;
  /** A full relist this often. */
  relistMs: number;
}

export type ControllerMetrics = ReturnType<typeof createControllerMetrics>;

/** The operator's metrics; `bridges` and the queue depth are read from whichever controller leads. */
export function createControllerMetrics(registry: Registry, view: { controller: () => Controller | undefined; leader: () => boolean }) {
  return {
    reconciles: new Counter({ ...metricDefs.operatorReconciles, registers: [registry] }),
    errors: new Counter({ ...metricDefs.operatorReconcileErrors, registers: [registry] }),
    duration: new Histogram({ ...metricDefs.operatorReconcileDuration, buckets: [...metricDefs.operatorReconcileDuration.buckets], registers: [registry] }),
    watchRestarts: new Counter({ ...metricDefs.operatorWatchRestarts, registers: [registry] }),
    leader: new Gauge({
      ...metricDefs.operatorLeader,
      registers: [registry],
      collect() {
        this.set(view.leader() ? 1 : 0);
      },
    }),
    depth: new Gauge({
      ...metricDefs.operatorQueueDepth,
      registers: [registry],
      collect() {
        this.set(view.controller()?.queueDepth ?? 0);
      },
    }),
    // Queue depth and consumers as RabbitMQ reported them at the last reconcile: metrics, not status
    // (a busy queue's counts change on every resync; in status that is an etcd write each time).
    queueMessages: new Gauge({ name: 'socketbridge_operator_queue_messages', help: 'Messages ready in a SocketBridge queue at its last reconcile', labelNames: ['namespace', 'socketbridge', 'queue'] as const, registers: [registry] }),
    queueConsumers: new Gauge({ name: 'socketbridge_operator_queue_consumers', help: 'Consumers of a SocketBridge queue at its last reconcile', labelNames: ['namespace', 'socketbridge', 'queue'] as const, registers: [registry] }),
    bridges: new Gauge({
      ...metricDefs.operatorBridges,
      registers: [registry],
      collect() {
        this.reset();
        const counts = { True: 0, False: 0, Unknown: 0 };
        for (const bridge of view.controller()?.cached() ?? []) counts[readyCondition(bridge.status)?.status ?? 'Unknown']++;
        for (const [ready, count] of Object.entries(counts)) this.set({ ready }, count);
      },
    }),
  };
}

/** The connection Secret does not exist (404), as opposed to could not be read. */
class SecretGone extends ReconcileError {
  constructor(message: string) {
    super('SecretNotFound', message);
  }
}

function keyOf(object: SocketBridge): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`;
}

/**
 * Reconciles SocketBridges while this replica leads: an informer (list, then watch; relists on
 * 410 Gone, restarts with backoff on errors) feeds a deduplicating work queue keyed by
 * namespace/name; workers add the finalizer, resolve the RabbitMQ Secret, run the Reconciler,
 * patch the status subresource and record Events; failures come back with capped exponential
 * backoff, and a periodic resync repairs drift (a queue deleted by hand comes back).
 */
export class Controller {
  private readonly queue: WorkQueue;
  private informer: Informer | undefined;
  private stopped = false;
  private listed = false;
  private lists = 0;
  private resyncTimer: NodeJS.Timeout | undefined;
  private workers: Promise<void>[] = [];
  /** Keys whose current generation failed in a way only an edit can fix: resync leaves them alone. */
  private readonly invalid = new Map<string, number | undefined>();
  /** The queues each key has metrics for, to remove them when they go. */
  private readonly metricQueues = new Map<string, string[]>();
  /** What each key last looked like, to skip updates that only touched the status. */
  private readonly seen = new Map<string, { generation: number | undefined; deleting: boolean; finalized: boolean }>();

  constructor(
    private readonly api: KubeApi,
    private readonly reconciler: Reconciler,
    private readonly recorder: EventRecorder,
    private readonly logger: Logger,
    private readonly metrics: ControllerMetrics,
    private readonly options: ControllerOptions,
  ) {
    this.queue = new WorkQueue(options.backoffBaseMs, options.backoffMaxMs);
  }

  /** True once the first list arrived. */
  get synced(): boolean {
    return this.listed;
  }

  get queueDepth(): number {
    return this.queue.depth;
  }

  cached(): readonly SocketBridge[] {
    return this.informer?.list() ?? [];
  }

  start(): void {
    const informer = new Informer({
      path: this.api.socketBridgePath(this.options.namespace),
      list: () => this.list(),
      watch: new Watch(this.api.config),
      logger: this.logger,
      watchTimeoutSeconds: this.options.watchTimeoutSeconds,
      idleMs: this.options.watchIdleMs,
      relistMs: this.options.relistMs,
      onAdd: (object) => this.observe(object, 'add'),
      onUpdate: (object) => this.observe(object, 'update'),
      onDelete: (object) => {
        const key = keyOf(object);
        this.seen.delete(key);
        this.invalid.delete(key);
        this.queue.forget(key);
        this.forgetQueueMetrics(object);
        this.logger.info({ socketbridge: key }, 'socketbridge gone');
      },
      onError: (error, retryInMs) => {
        if (this.stopped) return;
        this.metrics.watchRestarts.inc({ reason: 'error' });
        this.logger.warn({ err: apiMessage(error), status: statusCode(error), retryInMs }, 'socketbridge watch failed: restarting');
      },
      onRestart: (reason) => this.metrics.watchRestarts.inc({ reason }),
    });
    this.informer = informer;
    informer.start();
    for (let i = 0; i < this.options.workers; i++) this.workers.push(this.work());
    this.resyncTimer = setInterval(() => this.resync(), this.options.resyncMs);
    this.logger.info({ namespace: this.options.namespace ?? '(all)', workers: this.options.workers, resyncMs: this.options.resyncMs, relistMs: this.options.relistMs, watchIdleMs: this.options.watchIdleMs }, 'controller started');
  }

  /** Stops watching and taking work; waits for reconciles in flight. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.resyncTimer);
    this.informer?.stop();
    this.queue.shutDown();
    await Promise.all(this.workers);
    this.logger.info('controller stopped');
  }

  private async list() {
    if (this.stopped) throw new Error('the controller is stopping');
    this.lists++;
    const list = await this.api.listSocketBridges(this.options.namespace);
    // Events name the object by apiVersion and kind; list items may omit them (built-in lists do).
    for (const item of list.items) {
      item.apiVersion ??= API_VERSION;
      item.kind ??= KIND;
    }
    this.logger.info({ count: list.items.length, resourceVersion: list.metadata?.resourceVersion, relist: this.lists > 1 }, 'listed socketbridges');
    this.listed = true;
    return list;
  }

  private observe(object: SocketBridge, how: 'add' | 'update'): void {
    const key = keyOf(object);
    const now = { generation: object.metadata.generation, deleting: Boolean(object.metadata.deletionTimestamp), finalized: (object.metadata.finalizers ?? []).includes(FINALIZER) };
    const before = this.seen.get(key);
    this.seen.set(key, now);
    // Status patches (ours included) do not change the generation: no work, or we would loop.
    if (how === 'update' && before && before.generation === now.generation && before.deleting === now.deleting && (now.finalized || now.deleting)) return;
    this.queue.add(key);
  }

  private resync(): void {
    for (const object of this.cached()) {
      const key = keyOf(object);
      if (this.invalid.has(key) && this.invalid.get(key) === object.metadata.generation && !object.metadata.deletionTimestamp) continue;
      if (!this.queue.hasDelayed(key)) this.queue.add(key);
    }
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.reconcileKey(key);
      } catch (error) {
        // Only API trouble (a patch that failed) gets here; the reconcile's own failures are handled inside.
        const delay = this.queue.addRateLimited(key);
        this.metrics.reconciles.inc({ result: 'error' });
        this.logger.warn({ socketbridge: key, err: apiMessage(error), retryInMs: delay }, 'reconcile interrupted');
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async reconcileKey(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    let object = this.informer?.get(name, namespace);
    if (!object) return;
    const started = process.hrtime.bigint();
    try {
      if (object.metadata.deletionTimestamp) {
        await this.finalize(key, object);
        return;
      }
      if (!(object.metadata.finalizers ?? []).includes(FINALIZER)) {
        object = await this.addFinalizer(object);
        if (!object) {
          this.queue.addAfter(key, 200);
          return;
        }
      }
      await this.reconcile(key, object);
    } finally {
      this.metrics.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  /** Adds the finalizer with an optimistic-concurrency merge patch; undefined when the object moved on (409) or went (404). */
  private async addFinalizer(object: SocketBridge): Promise<SocketBridge | undefined> {
    const { namespace, name, resourceVersion, finalizers = [] } = object.metadata;
    try {
      const patched = await this.api.patchSocketBridge(namespace!, name!, { metadata: { finalizers: [...finalizers, FINALIZER], resourceVersion } });
      this.logger.info({ socketbridge: keyOf(object) }, 'finalizer added');
      return patched;
    } catch (error) {
      const code = statusCode(error);
      if (code === 409 || code === 404) return undefined;
      throw error;
    }
  }

  private async rabbitUrl(object: SocketBridge): Promise<string> {
    const secretName = object.spec.rabbitmq?.connectionSecret?.name;
    const namespace = object.metadata.namespace!;
    if (!secretName) {
      if (this.options.fallbackRabbitUrl) return this.options.fallbackRabbitUrl;
      throw new ReconcileError('SecretNotFound', 'spec.rabbitmq.connectionSecret is not set and the operator has no SOCKETBRIDGE_RABBITMQ_URL to fall back on');
    }
    let uri: string | undefined;
    try {
      uri = await this.api.readSecretKey(namespace, secretName, 'uri');
    } catch (error) {
      if (statusCode(error) === 404) throw new SecretGone(`Secret ${namespace}/${secretName} not found`);
      throw new ReconcileError('SecretNotFound', `Secret ${namespace}/${secretName} could not be read: ${apiMessage(error)}`);
    }
    if (!uri) throw new ReconcileError('SecretNotFound', `Secret ${namespace}/${secretName} has no key uri`);
    return uri.trim();
  }

  private async reconcile(key: string, object: SocketBridge): Promise<void> {
    const generation = object.metadata.generation ?? 0;
    const before = readyCondition(object.status);
    try {
      const rabbitUrl = await this.rabbitUrl(object);
      const result = await this.reconciler.apply({
        name: registryName(object.metadata.name!, object.metadata.namespace),
        owner: key,
        spec: object.spec,
        rabbitUrl,
      });
      this.setQueueMetrics(object, result.queues);
      // Status says what changes meaningfully (ready or not, per queue); counts are metrics.
      const queues = result.queues.map(({ name, ready }) => ({ name, ready }));
      const status = nextStatus(object.status, { ready: true, reason: 'Reconciled', message: '', generation, queues });
      if (!(await this.writeStatus(object, status))) {
        this.queue.addAfter(key, 200); // the object moved on (409): reconcile the newer version
        return;
      }
      this.queue.forget(key);
      this.invalid.delete(key);
      this.metrics.reconciles.inc({ result: 'success' });
      const fresh = before?.status !== 'True' || object.status?.observedGeneration !== generation;
      if (fresh || result.changes.length) {
        const ready = result.queues.filter((q) => q.ready).length;
        const message = `${ready} of ${result.queues.length} queue${result.queues.length === 1 ? '' : 's'} ready${result.changes.length ? `: ${result.changes.join('; ')}` : ''}`;
        this.logger.info({ socketbridge: key, generation, changes: result.changes }, 'reconciled');
        await this.recorder.record(object, 'Normal', 'Reconciled', message);
      }
    } catch (caught) {
      if (!(caught instanceof ReconcileError)) throw caught;
      const status = nextStatus(object.status, { ready: false, reason: caught.reason, message: caught.message, generation });
      this.metrics.reconciles.inc({ result: 'error' });
      this.metrics.errors.inc({ reason: caught.reason });
      const delay = caught.permanent ? undefined : this.queue.addRateLimited(key);
      if (caught.permanent) this.invalid.set(key, object.metadata.generation);
      else this.invalid.delete(key);
      this.logger.warn({ socketbridge: key, generation, reason: caught.reason, err: caught.message, retryInMs: delay ?? null }, 'reconcile failed');
      const after = readyCondition(status);
      if (before?.status !== 'False' || before.reason !== after?.reason || before.message !== after?.message) {
        await this.recorder.record(object, 'Warning', caught.reason, caught.message);
      }
      if (!(await this.writeStatus(object, status))) this.queue.addAfter(key, 200);
    }
  }

  private setQueueMetrics(object: SocketBridge, queues: ReadonlyArray<{ name: string; messages?: number; consumers?: number }>): void {
    const labels = { namespace: object.metadata.namespace ?? '', socketbridge: object.metadata.name ?? '' };
    this.forgetQueueMetrics(object);
    this.metricQueues.set(keyOf(object), queues.map((q) => q.name));
    for (const queue of queues) {
      if (queue.messages !== undefined) this.metrics.queueMessages.set({ ...labels, queue: queue.name }, queue.messages);
      if (queue.consumers !== undefined) this.metrics.queueConsumers.set({ ...labels, queue: queue.name }, queue.consumers);
    }
  }

  private forgetQueueMetrics(object: SocketBridge): void {
    const labels = { namespace: object.metadata.namespace ?? '', socketbridge: object.metadata.name ?? '' };
    for (const queue of this.metricQueues.get(keyOf(object)) ?? []) {
      this.metrics.queueMessages.remove({ ...labels, queue });
      this.metrics.queueConsumers.remove({ ...labels, queue });
    }
    this.metricQueues.delete(keyOf(object));
  }

  /**
   * Patches the status when it changed (an unchanged status is not sent), preconditioned on the
   * resourceVersion it was computed from. False on a 409: the object changed meanwhile, and the
   * caller requeues to compute the status again from the newer version.
   */
  private async writeStatus(object: SocketBridge, status: SocketBridgeStatus): Promise<boolean> {
    if (sameStatus(object.status, status)) return true;
    try {
      await this.api.patchSocketBridgeStatus(object.metadata.namespace!, object.metadata.name!, { metadata: { resourceVersion: object.metadata.resourceVersion }, status });
      return true;
    } catch (error) {
      const code = statusCode(error);
      if (code === 404) return true; // deleted meanwhile
      if (code === 409) return false;
      throw error;
    }
  }

  private async finalize(key: string, object: SocketBridge): Promise<void> {
    const finalizers = object.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return;
    const policy = object.spec.deletionPolicy ?? 'retain';
    const name = registryName(object.metadata.name!, object.metadata.namespace);
    try {
      let rabbitUrl: string | undefined;
      let leftBehind: string | undefined;
      if (policy === 'delete') {
        try {
          rabbitUrl = await this.rabbitUrl(object);
        } catch (caught) {
          // The connection Secret is gone (a namespace being deleted removes Secrets too): without it
          // the queues cannot be deleted, and waiting would hold the finalizer, and the namespace,
          // forever. As RabbitMQ's messaging-topology-operator does: remove what we can (the routes),
          // leave the queues, say so, and let the object go.
          // Only a Secret that is gone (404); one that could not be read this time is retried.
          if (!(caught instanceof SecretGone)) throw caught;
          leftBehind = `${caught.message}: deletionPolicy delete could not be applied; left in RabbitMQ: queues ${object.spec.queues.map((q) => q.name).join(', ')}`;
        }
      }
      const { deletedQueues } = await this.reconciler.remove({
        name,
        owner: key,
        spec: object.spec,
        deletionPolicy: rabbitUrl ? policy : 'retain',
        ...(rabbitUrl ? { rabbitUrl } : {}),
      });
      if (leftBehind) {
        this.metrics.errors.inc({ reason: 'QueuesLeftBehind' });
        this.logger.warn({ socketbridge: key, reason: 'QueuesLeftBehind', leftBehind }, 'finalized without deleting the queues');
        await this.recorder.record(object, 'Warning', 'QueuesLeftBehind', `routes removed; ${leftBehind}`);
      } else {
        const message = deletedQueues.length ? `routes removed; deleted queues ${deletedQueues.join(', ')}` : 'routes removed; queues retained';
        await this.recorder.record(object, 'Normal', 'Deleted', message);
      }
      this.logger.info({ socketbridge: key, deletedQueues }, 'finalized');
    } catch (caught) {
      if (!(caught instanceof ReconcileError)) throw caught;
      const error = new ReconcileError('DeleteFailed', caught.message);
      this.metrics.reconciles.inc({ result: 'error' });
      this.metrics.errors.inc({ reason: error.reason });
      const delay = this.queue.addRateLimited(key);
      this.logger.warn({ socketbridge: key, reason: error.reason, err: error.message, retryInMs: delay }, 'finalize failed');
      const before = readyCondition(object.status);
      const status = nextStatus(object.status, { ready: false, reason: error.reason, message: error.message, generation: object.metadata.generation ?? 0 });
      if (before?.status !== 'False' || before.message !== readyCondition(status)?.message) await this.recorder.record(object, 'Warning', error.reason, error.message);
      await this.writeStatus(object, status);
      return;
    }
    try {
      await this.api.patchSocketBridge(object.metadata.namespace!, object.metadata.name!, {
        metadata: { finalizers: finalizers.filter((f) => f !== FINALIZER), resourceVersion: object.metadata.resourceVersion },
      });
      this.queue.forget(key);
      this.metrics.reconciles.inc({ result: 'success' });
    } catch (error) {
      const code = statusCode(error);
      if (code === 404) return;
      if (code === 409) {
        this.queue.addAfter(key, 200); // a newer version exists: finalize that one (removal is idempotent)
        return;
      }
      throw error;
    }
  }
}
