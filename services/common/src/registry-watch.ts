import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { registryKeys, type Bridge } from './bridges.js';
import { DEFAULT_POLICIES, type ChannelPolicy } from './channels.js';

/**
 * Commands fail at once while Redis is away instead of queueing without bound: callers answer
 * 503 or keep their last view, and nothing piles up in memory.
 */
export function connectRedis(url: string, logger: Logger, name: string): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    // Commands issued in one turn of the event loop go out in one write (a busy publisher's appends).
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 5000),
  });
  let down = false;
  redis.on('error', (error: Error) => {
    if (!down) logger.warn({ err: error.message }, 'redis unavailable');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info('redis is back');
    down = false;
  });
  return redis;
}

/**
 * The registry's bridges and channel policies as this process last read them. Reloads when a
 * writer announces a change and every `resyncMs` besides (a missed announcement heals itself), and
 * keeps its last view while Redis is away.
 */
export class RegistryWatcher {
  private current: Bridge[] = [];
  private subscriber: Redis;
  private timer: NodeJS.Timeout;
  private loaded = false;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    resyncMs: number,
    private readonly onChange?: (bridges: Bridge[]) => void,
  ) {
    this.subscriber = redis.duplicate({ enableOfflineQueue: true });
    this.subscriber.on('error', () => undefined); // the main connection reports Redis being away
    void this.subscriber.subscribe(registryKeys.changes).catch(() => undefined);
    this.subscriber.on('message', () => void this.reload());
    this.redis.on('ready', () => void this.reload());
    this.timer = setInterval(() => void this.reload(), resyncMs);
    this.timer.unref();
  }

  get isLoaded(): boolean {
    return this.loaded;
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
      this.loaded = true;
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
