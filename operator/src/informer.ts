import type { KubernetesListObject, Watch } from '@kubernetes/client-node';
import type { Logger } from '@socketbridge/common';
import { apiMessage, statusCode } from './kube.js';
import type { SocketBridge } from './resource.js';

export interface InformerOptions {
  /** The collection's path (one namespace or all). */
  path: string;
  list: () => Promise<KubernetesListObject<SocketBridge>>;
  watch: Watch;
  logger: Logger;
  /** Server-side watch timeout, drawn between this and twice this (as client-go's reflector does with its minimum). */
  watchTimeoutSeconds: number;
  /** Restart the watch when nothing (not even a bookmark) arrived for this long. */
  idleMs: number;
  /** List again this often (a full relist, not a replay of the cache). */
  relistMs: number;
  onAdd: (object: SocketBridge) => void;
  onUpdate: (object: SocketBridge) => void;
  onDelete: (object: SocketBridge) => void;
  /** A watch or list failed; the informer retries by itself (after `retryInMs`). */
  onError: (error: unknown, retryInMs: number) => void;
  /** Why a watch was restarted: `idle` (the watchdog), `relist` (periodic or 410 Gone). */
  onRestart: (reason: 'idle' | 'relist') => void;
}

function keyOf(object: SocketBridge): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`;
}

/**
 * List, then watch, after client-go's reflector, with what a half-open connection needs: every
 * watch asks for bookmarks (`allowWatchBookmarks`) and a server-side `timeoutSeconds`; a watchdog
 * restarts a watch from which nothing arrived within `idleMs` (bookmarks count, so a healthy but
 * quiet watch is not restarted when the server sends them); and a periodic relist replaces the
 * cache from a fresh list (objects missed by a stalled watch appear, ones deleted meanwhile go).
 * A 410 Gone relists; other failures retry with backoff (0.5 s doubling to 30 s).
 */
export class Informer {
  private readonly cache = new Map<string, SocketBridge>();
  private resourceVersion = '';
  private stopped = false;
  /** Bumped on every (re)start: callbacks of an older watch are ignored. */
  private generation = 0;
  private abortWatch: (() => void) | undefined;
  private lastEventAt = 0;
  private failures = 0;
  private lastFailureAt = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: InformerOptions) {}

  get(name: string, namespace: string): SocketBridge | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  list(): SocketBridge[] {
    return [...this.cache.values()];
  }

  start(): void {
    this.restart(true);
    const tick = Math.max(50, Math.min(1000, Math.floor(this.options.idleMs / 4)));
    this.watchdog = setInterval(() => {
      if (this.stopped || !this.abortWatch) return;
      if (Date.now() - this.lastEventAt >= this.options.idleMs) {
        this.options.logger.warn({ idleMs: this.options.idleMs, resourceVersion: this.resourceVersion }, 'socketbridge watch idle: restarting it');
        this.options.onRestart('idle');
        this.restart(false);
      }
    }, tick);
    this.relistTimer = setInterval(() => {
      if (this.stopped) return;
      this.options.onRestart('relist');
      this.restart(true);
    }, this.options.relistMs);
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    clearInterval(this.watchdog);
    clearInterval(this.relistTimer);
    clearTimeout(this.retryTimer);
    this.abortWatch?.();
    this.abortWatch = undefined;
  }

  /** Ends the current watch (if any) and starts again: with a list first when `relist`, else from the last resourceVersion. */
  private restart(relist: boolean): void {
    const generation = ++this.generation;
    clearTimeout(this.retryTimer);
    this.abortWatch?.();
    this.abortWatch = undefined;
    void this.run(generation, relist || !this.resourceVersion);
  }

  private async run(generation: number, relist: boolean): Promise<void> {
    if (this.stopped || generation !== this.generation) return;
    try {
      if (relist) await this.relist(generation);
      if (this.stopped || generation !== this.generation) return;
      await this.watch(generation);
    } catch (error) {
      if (this.stopped || generation !== this.generation) return;
      this.fail(error, relist);
    }
  }

  private fail(error: unknown, relist: boolean): void {
    const now = Date.now();
    if (now - this.lastFailureAt > 30000) this.failures = 0;
    this.lastFailureAt = now;
    const delay = Math.min(500 * 2 ** this.failures, 30000);
    this.failures++;
    this.options.onError(error, delay);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.restart(relist || !this.resourceVersion), delay);
  }

  private async relist(generation: number): Promise<void> {
    const list = await this.options.list();
    if (this.stopped || generation !== this.generation) return; // a newer start owns the cache now
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = keyOf(item);
      seen.add(key);
      const before = this.cache.get(key);
      this.cache.set(key, item);
      if (!before) this.options.onAdd(item);
      else if (before.metadata.resourceVersion !== item.metadata.resourceVersion) this.options.onUpdate(item);
    }
    for (const [key, object] of this.cache) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.options.onDelete(object);
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
  }

  private async watch(generation: number): Promise<void> {
    const timeoutSeconds = this.options.watchTimeoutSeconds + Math.floor(Math.random() * this.options.watchTimeoutSeconds);
    const startedAt = Date.now();
    this.lastEventAt = startedAt;
    let aborted = false;
    // Until the response headers arrive, the watchdog can only abandon the attempt (client-node returns the abort handle later).
    this.abortWatch = () => (aborted = true);
    const controller = await this.options.watch.watch(
      this.options.path,
      { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
      (type: string, object: SocketBridge & { code?: number; message?: string }) => {
        if (this.stopped || generation !== this.generation) return;
        this.lastEventAt = Date.now();
        this.onEvent(generation, type, object);
      },
      (error: unknown) => {
        if (this.stopped || generation !== this.generation) return;
        this.abortWatch = undefined;
        if (error) {
          this.fail(error, false);
          return;
        }
        // The server ended the watch (its timeout): watch again from where we are. One that ends
        // at once, again and again, is trouble: back off as after an error.
        if (Date.now() - startedAt < 1000) {
          this.fail(new Error('the watch ended as soon as it started'), false);
          return;
        }
        this.failures = 0;
        this.restart(false);
      },
    );
    if (aborted || this.stopped || generation !== this.generation) {
      controller.abort();
      return;
    }
    this.abortWatch = () => controller.abort();
  }

  private onEvent(generation: number, type: string, object: SocketBridge & { code?: number; message?: string }): void {
    switch (type) {
      case 'ADDED':
      case 'MODIFIED': {
        const key = keyOf(object);
        const before = this.cache.get(key);
        this.cache.set(key, object);
        if (before) this.options.onUpdate(object);
        else this.options.onAdd(object);
        break;
      }
      case 'DELETED': {
        const key = keyOf(object);
        this.cache.delete(key);
        this.options.onDelete(object);
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const code = statusCode(object);
        this.options.logger.warn({ code: code ?? null, err: apiMessage(object) }, 'socketbridge watch sent an error');
        if (generation !== this.generation) return;
        if (code === 410) {
          this.options.onRestart('relist');
          this.restart(true);
        } else {
          this.generation++; // this watch's own end is not a second failure
          this.abortWatch?.();
          this.abortWatch = undefined;
          this.fail(Object.assign(new Error(object.message ?? 'watch error'), { statusCode: code }), false);
        }
        return;
      }
      default:
        return;
    }
    const version = object.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
  }
}
