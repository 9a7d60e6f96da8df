import { randomUUID } from 'node:crypto';
import amqp, { type ChannelModel } from 'amqplib';
import { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { rabbitmqUrl, redisUrl } from '@socketbridge/devkit';
import { OWNERS_KEY } from '../../src/reconciler.js';
import { LOCAL_STATUS_KEY } from '../../src/local.js';

export const RABBITMQ_URL = rabbitmqUrl();
/**
 * The operator's tests use their own database of the test run's Redis: publishers of other test
 * files consume every bridge in database 0's registry, and would compete for these tests' queues.
 */
export const TEST_REDIS_URL = redisUrl(13);

/** The test run's RabbitMQ URL (its vhost included) with another port: through a proxy in front of it. */
export function proxiedUrl(port: number): string {
  const url = new URL(RABBITMQ_URL);
  url.port = String(port);
  return url.toString();
}

/** A short unique id for this run's names (lower-case hex: fits DNS labels, queues and channels). */
export function uniqueId(): string {
  return randomUUID().replace(/-/g, '').slice(0, 8);
}

export function testRedis(): Redis {
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  return redis;
}

/** Removes registry entries, owners and local-mode statuses this run wrote. */
export async function cleanRegistry(redis: Redis, names: string[]): Promise<void> {
  if (!names.length) return;
  await redis.multi().hdel(registryKeys.bridges, ...names).hdel(OWNERS_KEY, ...names).hdel(LOCAL_STATUS_KEY, ...names).exec();
}

/** Deletes keys matching a pattern (such as the channel histories a test's messages left). */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  for (let round = 0; round < 10000; round++) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (keys.length) await redis.del(...keys);
    cursor = next;
    if (cursor === '0') return;
  }
}

/** RabbitMQ as a test inspects it: what exists, where a routing key goes, and clean-up. */
export class RabbitAdmin {
  private constructor(private readonly connection: ChannelModel) {}

  static async connect(url = RABBITMQ_URL): Promise<RabbitAdmin> {
    const connection = await amqp.connect(url);
    connection.on('error', () => undefined);
    return new RabbitAdmin(connection);
  }

  private async attempt<T>(fn: (channel: amqp.Channel) => Promise<T>): Promise<T | undefined> {
    const channel = await this.connection.createChannel();
    channel.on('error', () => undefined);
    try {
      return await fn(channel);
    } catch {
      return undefined;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  async queue(name: string): Promise<{ messageCount: number; consumerCount: number } | undefined> {
    return this.attempt((ch) => ch.checkQueue(name));
  }

  async exchangeExists(name: string): Promise<boolean> {
    return (await this.attempt((ch) => ch.checkExchange(name))) !== undefined;
  }

  /** Whether RabbitMQ routes `routingKey` on `exchange` to any queue (a mandatory publish that is not returned). */
  async routes(exchange: string, routingKey: string, body: unknown = { probe: true }): Promise<boolean> {
    const channel = await this.connection.createConfirmChannel();
    channel.on('error', () => undefined);
    let returned = false;
    channel.on('return', () => (returned = true));
    try {
      await new Promise<void>((resolve, reject) =>
        channel.publish(exchange, routingKey, Buffer.from(JSON.stringify(body)), { mandatory: true, contentType: 'application/json' }, (error: unknown) =>
          error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
        ),
      );
      // RabbitMQ sends basic.return before the confirm of an unroutable mandatory message.
      return !returned;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  async declareExchange(name: string, type: string): Promise<void> {
    await this.attempt((ch) => ch.assertExchange(name, type, { durable: true }));
  }

  async deleteQueue(name: string): Promise<void> {
    await this.attempt((ch) => ch.deleteQueue(name));
  }

  async cleanUp(queues: string[], exchanges: string[]): Promise<void> {
    for (const queue of queues) await this.attempt((ch) => ch.deleteQueue(queue));
    for (const exchange of exchanges) await this.attempt((ch) => ch.deleteExchange(exchange));
  }

  async close(): Promise<void> {
    await this.connection.close().catch(() => undefined);
  }
}
