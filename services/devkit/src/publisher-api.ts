import { randomUUID } from 'node:crypto';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { opsHeaders } from './cluster.js';
import { rabbitmqUrl } from './test-services.js';

const run = promisify(execFile);

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

/** The publisher's REST API as a test calls it: JSON in, status and JSON out. */
export class PublisherApi {
  constructor(
    readonly base: string,
    readonly apiKey?: string,
  ) {}

  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(this.apiKey ? { 'x-api-key': this.apiKey } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (e.g. /metrics): keep the text
    }
    return { status: response.status, body: parsed as T };
  }

  /** A new client with a unique email; returns what `POST /v1/create-channel-client` answered. */
  async createClient(name = 'Test Client'): Promise<{ clientId: string; channel: string; token: string; email: string; password: string }> {
    const email = `${randomUUID()}@example.test`;
    const password = 'correct horse battery';
    const { status, body } = await this.request<{ clientId: string; channel: string; token: string }>('POST', '/v1/create-channel-client', { name, email, password });
    if (status !== 201) throw new Error(`create client: ${status} ${JSON.stringify(body)}`);
    return { ...body, email, password };
  }

  /**
   * The value of one sample of `/metrics` (fetched with the ops key): the first of `name` whose labels
   * include `labels` (compared as values, so names need no escaping); undefined if there is none.
   */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    const text = (await this.request<string>('GET', '/metrics', undefined, opsHeaders())).body;
    for (const line of text.split('\n')) {
      const sample = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!sample || sample[1] !== name) continue;
      const found = new Map([...(sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, key, value]) => [key!, value!]));
      if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) return Number(sample[3]);
    }
    return undefined;
  }
}

/** A RabbitMQ connection with a confirm channel, for tests that publish as a producer would. */
export class AmqpProducer {
  private constructor(
    readonly connection: ChannelModel,
    readonly channel: ConfirmChannel,
  ) {}

  static async connect(url = rabbitmqUrl()): Promise<AmqpProducer> {
    const connection = await amqp.connect(url);
    const channel = await connection.createConfirmChannel();
    return new AmqpProducer(connection, channel);
  }

  /** Publishes and waits for RabbitMQ's confirm; JSON bodies get `application/json`. */
  async publish(exchange: string, routingKey: string, body: unknown, options: amqp.Options.Publish = {}): Promise<void> {
    const content = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const contentType = Buffer.isBuffer(body) || typeof body === 'string' ? undefined : 'application/json';
    await new Promise<void>((resolve, reject) =>
      this.channel.publish(exchange, routingKey, content, { contentType, persistent: true, ...options }, (error: unknown) =>
        error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
      ),
    );
  }

  /** Removes what `rabbitNames` named (tests clean up after themselves; RabbitMQ keeps durable queues). */
  async deleteTopology(names: RabbitNames, extraQueues: string[] = []): Promise<void> {
    const channel = await this.connection.createChannel();
    for (const queue of [names.SOCKETBRIDGE_QUEUE, names.SOCKETBRIDGE_DEAD_LETTER_QUEUE, ...extraQueues]) {
      await channel.deleteQueue(queue).catch(() => undefined);
    }
    for (const exchange of [names.SOCKETBRIDGE_EXCHANGE, names.SOCKETBRIDGE_DEAD_LETTER_EXCHANGE]) {
      await channel.deleteExchange(exchange).catch(() => undefined);
    }
    await channel.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.connection.close().catch(() => undefined);
  }
}

export interface RabbitNames extends Record<string, string> {
  SOCKETBRIDGE_EXCHANGE: string;
  SOCKETBRIDGE_QUEUE: string;
  SOCKETBRIDGE_DEAD_LETTER_EXCHANGE: string;
  SOCKETBRIDGE_DEAD_LETTER_QUEUE: string;
}

/** Unique RabbitMQ names for one test file, so files never share a queue. */
export function rabbitNames(prefix: string): RabbitNames {
  const id = randomUUID().slice(0, 8);
  return {
    SOCKETBRIDGE_EXCHANGE: `${prefix}-${id}`,
    SOCKETBRIDGE_QUEUE: `${prefix}-${id}.default`,
    SOCKETBRIDGE_DEAD_LETTER_EXCHANGE: `${prefix}-${id}.dlx`,
    SOCKETBRIDGE_DEAD_LETTER_QUEUE: `${prefix}-${id}.dead-letter`,
  };
}

/**
 * The machine RabbitMQ's pid of the publisher's own connection, found by the instance id it names
 * the connection with, for `rabbitmqctl close_connection` (tab output keeps the pid usable).
 */
export async function publisherConnectionPid(api: PublisherApi): Promise<string> {
  const publisherId = (await api.request<{ instanceId: string }>('GET', '/cluster', undefined, opsHeaders())).body.instanceId;
  const { stdout } = await run('rabbitmqctl', ['list_connections', 'pid', 'client_properties', '-q', '--no-table-headers']);
  const line = stdout.split('\n').find((l) => l.includes(publisherId));
  if (!line) throw new Error('the publisher has no RabbitMQ connection');
  return line.split('\t')[0]!;
}
