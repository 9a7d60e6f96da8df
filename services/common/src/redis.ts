import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * The Redis connection of a long-lived service (publisher, worker, operator). Commands fail at once
 * while Redis is away instead of queueing without bound: callers answer 503 or keep their last
 * view, and nothing piles up in memory; the connection retries in the background.
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
 * The Redis connection of a one-shot command (`npm run bridge`): one attempt within 5 s, no
 * retries, and an error naming the (redacted) address when Redis is not there, so the command
 * exits with a reason instead of waiting.
 */
export async function connectRedisOnce(url: string, redactedUrl: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 5000, retryStrategy: () => null });
  redis.on('error', () => undefined); // connect() reports it
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis is not reachable at ${redactedUrl}: ${(error as Error).message || 'connection refused'}`);
  }
  return redis;
}
