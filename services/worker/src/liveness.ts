import { registryKeys, type Logger, type RedisClient } from '@socketbridge/common';

export interface LivenessOptions {
  redis: RedisClient;
  instanceId: string;
  intervalMs: number;
  /** Whether the worker may be listed now (it hears the control channel, so it can answer queries). */
  canRenew: () => boolean;
  /** The live workers, read in the same step as each renewal. */
  onLive: (live: Set<string>) => void;
  logger: Logger;
}

/**
 * This worker's entry in the live workers' set (`socketbridge:{workers}:live`, scored by when it
 * expires): publishers wait only for listed workers when they ask the cluster (channel info,
 * presence), and a worker gone from the set left its presence channels. The entry lapses by itself
 * after three intervals if the worker dies.
 */
export class Liveness {
  private listed = false;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly options: LivenessOptions) {}

  start(): void {
    const { intervalMs } = this.options;
    // The first entry as soon as the worker may be listed (its /readyz waits for it), then one per interval.
    const first = setInterval(() => (this.listed ? clearInterval(first) : this.renew()), Math.min(50, intervalMs));
    this.timers.push(first, setInterval(() => this.renew(), intervalMs));
    for (const timer of this.timers) timer.unref();
  }

  /** Stops renewing and removes the entry (a drained worker is gone at once, not after the expiry). */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await this.options.redis.zrem(registryKeys.liveWorkers, this.options.instanceId).catch(() => undefined);
  }

  private renew(): void {
    const { redis, instanceId, intervalMs, canRenew, onLive, logger } = this.options;
    if (!canRenew() || redis.status !== 'ready') return;
    const now = Date.now();
    redis
      .multi()
      .zadd(registryKeys.liveWorkers, now + 3 * intervalMs, instanceId)
      .zremrangebyscore(registryKeys.liveWorkers, '-inf', now)
      .zrangebyscore(registryKeys.liveWorkers, now, '+inf')
      .exec()
      .then((results) => {
        const [error, live] = results?.[2] ?? [new Error('the transaction was aborted')];
        if (!error && Array.isArray(live)) {
          this.listed = true;
          onLive(new Set(live as string[]));
        }
      })
      .catch((error: unknown) => logger.debug({ err: error }, 'could not renew the liveness entry'));
  }
}
