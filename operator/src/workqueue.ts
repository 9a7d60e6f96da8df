/**
 * A work queue keyed by `namespace/name`, after client-go's: a key is queued at most once, a key
 * being processed is never handed to a second worker (adding it meanwhile marks it to run again
 * when the first finishes), and failures come back after an exponential, capped delay.
 */
export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly baseDelayMs: number,
    private readonly maxDelayMs: number,
  ) {}

  /** Keys waiting to be processed (ready or delayed). */
  get depth(): number {
    return this.queued.size + [...this.delayed.keys()].filter((k) => !this.queued.has(k)).length;
  }

  add(key: string): void {
    if (this.closed) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.waiters.shift()?.();
  }

  /** Adds `key` after `delayMs`; an earlier pending add for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.closed) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** Requeues after base × 2^failures (capped); returns the delay chosen. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const delay = Math.min(this.baseDelayMs * 2 ** Math.min(failures, 30), this.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded (or is gone): its next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  hasDelayed(key: string): boolean {
    return this.delayed.has(key);
  }

  /** The next key to process; undefined once the queue is shut down. */
  async get(): Promise<string | undefined> {
    while (!this.closed && this.ready.length === 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.closed) return undefined;
    const key = this.ready.shift()!;
    this.queued.delete(key);
    this.processing.add(key);
    return key;
  }

  /** A worker finished `key`; if it was added meanwhile, it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.closed = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    for (const wake of this.waiters.splice(0)) wake();
  }
}
