import { duplicateRedis, type RedisClient } from './redis.js';
import type { Logger } from 'pino';
import { registryKeys, type Bridge } from './bridges.js';
import { DEFAULT_POLICIES, type ChannelPolicy } from './channels.js';

/**
 * The registry's bridges and channel policies as this process last read them. Reloads when a
 * writer announces a change and every `resyncMs` besides (a missed announcement heals itself), and
 * keeps its last view while Redis is away.
 */
export class BridgeWatcher {
  private current: Bridge[] = [];
  private subscriber: RedisClient;
  private timer: NodeJS.Timeout;

  constructor(
    private readonly redis: RedisClient,
    private readonly logger: Logger,
    resyncMs: number,
    private readonly onChange?: (bridges: Bridge[]) => void,
  ) {
    // In Redis Cluster a plain PUBLISH reaches subscribers on every node, so the subscriber may sit on any (docs/scaling.md).
    this.subscriber = duplicateRedis(redis, { enableOfflineQueue: true });
    this.subscriber.on('error', () => undefined); // the main connection reports Redis being away
    void this.subscriber.subscribe(registryKeys.changes).catch(() => undefined);
    this.subscriber.on('message', () => void this.reload());
    this.redis.on('ready', () => void this.reload());
    this.timer = setInterval(() => void this.reload(), resyncMs);
    this.timer.unref();
  }

  async reload(): Promise<void> {
    try {
      const raw = await this.redis.hvals(registryKeys.bridges);
      const bridges: Bridge[] = [];
      for (const text of raw) {
        try {
          bridges.push(JSON.parse(text) as Bridge);
        } catch {
          this.logger.error({ text: text.slice(0, 200) }, 'unreadable bridge in the registry: skipped');
        }
      }
      bridges.sort((a, b) => a.name.localeCompare(b.name));
      const changed = JSON.stringify(bridges) !== JSON.stringify(this.current);
      this.current = bridges;
      if (changed) this.onChange?.(bridges);
    } catch (error) {
      this.logger.debug({ err: (error as Error).message }, 'registry reload failed: keeping the last view');
    }
  }

  bridges(): Bridge[] {
    return this.current;
  }

  /** Bridges' own policies first (more specific), then the defaults every deployment has. */
  policies(): ChannelPolicy[] {
    return [...this.current.flatMap((b) => b.channels), ...DEFAULT_POLICIES];
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.subscriber.disconnect();
  }
}
