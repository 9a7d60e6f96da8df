import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/** Where a service finds Redis: one node by URL, or the master Sentinel names (docs/scaling.md). */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'sentinel'; sentinels: Array<{ host: string; port: number }>; name: string; db: number; username?: string; password?: string };

const SENTINEL_URL = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/@]+)\/([^/?#]+)(?:\/(\d+))?\/?$/;

/**
 * Reads SOCKETBRIDGE_REDIS_URL: `redis://` or `rediss://` for one node, or
 * `redis+sentinel://[[user]:password@]host:port[,host:port…]/<masterName>[/<db>]` for a master that
 * Sentinel watches (the password is the master's; sentinels without a password, see docs/scaling.md).
 * Throws a sentence naming the accepted forms, so a typo stops the service at start rather than
 * leaving it retrying against nothing.
 */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\//.test(url)) return { kind: 'single', url };
  if (!url.startsWith('redis+sentinel://')) {
    throw new Error(`not a Redis URL: expected redis://host:port[/db], rediss://… or redis+sentinel://host:port,host:port/<masterName>[/<db>]`);
  }
  const match = SENTINEL_URL.exec(url);
  if (!match) throw new Error('a Sentinel URL is redis+sentinel://[[user]:password@]host:port[,host:port…]/<masterName>[/<db>]');
  const [, user, password, hosts, name, db] = match as unknown as [string, string | undefined, string | undefined, string, string, string | undefined];
  const sentinels = hosts.split(',').map((entry) => {
    const at = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    const port = Number(at?.[2] ?? 26379);
    if (!at || port < 1 || port > 65535) throw new Error(`Sentinel address ${JSON.stringify(entry)} is not host[:port]`);
    return { host: at[1]!.replace(/^\[|\]$/g, ''), port };
  });
  return {
    kind: 'sentinel',
    sentinels,
    name: decodeURIComponent(name),
    db: db === undefined ? 0 : Number(db),
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(password ? { password: decodeURIComponent(password) } : {}),
  };
}

/** A client for the target: Sentinel's answer to "who is the master", asked again on every reconnect. */
function newRedis(url: string, options: RedisOptions): Redis {
  const target = parseRedisUrl(url);
  if (target.kind === 'single') return new Redis(url, options);
  return new Redis({
    ...options,
    sentinels: target.sentinels,
    name: target.name,
    role: 'master',
    db: target.db,
    username: target.username,
    password: target.password,
    // Listens for Sentinel's +switch-master, so a promotion is followed at once, not at the next failed command.
    failoverDetector: true,
    // A master that was demoted while we held the connection answers writes with READONLY: reconnect, asking Sentinel again.
    reconnectOnError: (error) => error.message.startsWith('READONLY'),
  });
}

/**
 * The Redis connection of a long-lived service (publisher, worker, operator). Commands fail at once
 * while Redis is away instead of queueing without bound: callers answer 503 or keep their last
 * view, and nothing piles up in memory; the connection retries in the background.
 */
export function connectRedis(url: string, logger: Logger, name: string): Redis {
  const redis = newRedis(url, {
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
 * The Redis connection of a one-shot command (`npm run bridge`): one attempt within 5 s, no
 * retries, and an error naming the (redacted) address when Redis is not there, so the command
 * exits with a reason instead of waiting.
 */
export async function connectRedisOnce(url: string, redactedUrl: string): Promise<Redis> {
  // sentinelRetryStrategy null: one pass over the sentinels, then the error, as for a single node.
  const redis = newRedis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5000, retryStrategy: () => null, sentinelRetryStrategy: () => null });
  redis.on('error', () => undefined); // connect() reports it
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis is not reachable at ${redactedUrl}: ${(error as Error).message || 'connection refused'}`);
  }
  return redis;
}
