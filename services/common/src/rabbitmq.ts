import amqp, { type ChannelModel } from 'amqplib';
import { withTimeout } from './wait.js';

const AMQP_URL = /^amqps?:\/\/[^\s,]+$/;

/**
 * Reads SOCKETBRIDGE_RABBITMQ_URL: one `amqp://` or `amqps://` URL, or several separated by commas,
 * the nodes of one RabbitMQ cluster (docs/scaling.md). Each is a whole URL (credentials, vhost,
 * query) so nodes may differ in anything; a comma inside a password must be written `%2C`.
 * Throws a sentence naming the bad entry, so a typo stops the service at start.
 */
export function parseRabbitUrls(value: string): string[] {
  const urls = value.split(',').map((entry) => entry.trim());
  for (const url of urls) {
    if (!AMQP_URL.test(url)) throw new Error(`${JSON.stringify(redactUrl(url))} is not an amqp:// or amqps:// URL (several nodes: comma-separated URLs)`);
    try {
      new URL(url);
    } catch {
      throw new Error(`${JSON.stringify(redactUrl(url))} is not a valid URL`);
    }
  }
  return urls;
}

/** amqp://user:secret@host → amqp://user:***@host (every URL of a list), for messages and logs. */
export function redactUrl(url: string): string {
  // The userinfo's password, and a Redis Sentinel URL's sentinelPassword query parameter.
  return url.replace(/(\/\/[^:/@,]*:)[^@/,]*@/g, '$1***@').replace(/([?&]sentinelPassword=)[^&#]*/gi, '$1***');
}

export interface RabbitConnectOptions {
  /** Index of the node to try first; the others follow in list order, wrapping around. */
  first?: number;
  /** Bound on each node's attempt (TCP, TLS and the AMQP handshake). */
  timeoutMs: number;
  /** Shown in RabbitMQ's connection list. */
  connectionName: string;
}

/**
 * Connects to the first node of the list that accepts, starting at `first`: a node that is down
 * costs one refused or timed-out attempt, not the caller's whole back-off. Resolves with the
 * connection and the node's index; rejects with every node's failure when none accepts.
 */
export async function connectRabbit(urls: string[], options: RabbitConnectOptions): Promise<{ connection: ChannelModel; index: number }> {
  const failures: string[] = [];
  for (let i = 0; i < urls.length; i++) {
    const index = ((options.first ?? 0) + i) % urls.length;
    const url = urls[index]!;
    try {
      const connection = await withTimeout(
        amqp.connect(url, { timeout: options.timeoutMs, clientProperties: { connection_name: options.connectionName } }),
        options.timeoutMs,
        'the AMQP handshake',
        // A connection that completes after we gave up on it is closed, not leaked.
        (late) => void late.then((c) => c.close()).catch(() => undefined),
      );
      return { connection, index };
    } catch (error) {
      failures.push(urls.length === 1 ? (error as Error).message : `${redactUrl(url)}: ${(error as Error).message}`);
    }
  }
  throw new Error(urls.length === 1 ? failures[0]! : `no RabbitMQ node accepted (${failures.join('; ')})`);
}
