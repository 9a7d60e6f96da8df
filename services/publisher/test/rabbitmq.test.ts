import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import { redactUrl, type Envelope } from '@socketbridge/common';
import {
  AmqpProducer,
  LocalCluster,
  PublisherApi,
  connectClient,
  freePort,
  rabbitmqUrl,
  startPublisherTestbed,
  publisherConnectionPid,
  waitFor,
  type PublisherTestbed,
  type RabbitNames,
} from '@socketbridge/devkit';

const run = promisify(execFile);
let testbed: PublisherTestbed;
let names: RabbitNames;
let cluster: LocalCluster;
let api: PublisherApi;
let producer: AmqpProducer;
let deadNode: string;
const sockets: AGClientSocket[] = [];

beforeAll(async () => {
  // Two nodes, the first never there: the publisher goes on to the next, at start and after every lost connection.
  deadNode = `amqp://127.0.0.1:${await freePort()}`;
  testbed = await startPublisherTestbed('amqp', {
    brokers: 2,
    workers: 2,
    env: { SOCKETBRIDGE_MAX_MESSAGE_BYTES: '4096', SOCKETBRIDGE_PREFETCH: '100', SOCKETBRIDGE_RABBITMQ_URL: `${deadNode},${rabbitmqUrl()}` },
  });
  ({ names, cluster, api } = testbed);
  producer = await AmqpProducer.connect();
});
afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  await producer.close();
  await testbed.teardown();
});

async function subscriber(worker: number): Promise<{ channel: string; received: Envelope[] }> {
  const created = await api.createClient();
  const socket = await connectClient(cluster.workers[worker]!.port, { token: created.token });
  sockets.push(socket);
  const channel = socket.subscribe(created.channel);
  const received: Envelope[] = [];
  void (async () => {
    for await (const data of channel) received.push(data as Envelope);
  })();
  await channel.listener('subscribe').once();
  return { channel: created.channel, received };
}

/** How many messages the publisher took from this file's queue so far. */
async function consumedCount(): Promise<number> {
  return (await api.metric('socketbridge_messages_consumed_total', { queue: names.SOCKETBRIDGE_QUEUE })) ?? 0;
}

describe('RabbitMQ consumption', () => {
  it('poison messages go to the dead-letter queue with a reason, and the stream behind them flows', async () => {
    const { channel, received } = await subscriber(0);
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, { n: 1 });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from('{"not json'), { contentType: 'application/json' });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, { big: 'x'.repeat(8000) });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, 'has spaces!', { n: 'unroutable' });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from([0xff, 0xfe, 0x00]), { contentType: 'text/plain' });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, 'plain text', { contentType: 'text/plain' });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from([1, 2, 3]), { contentType: 'application/octet-stream' });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, { n: 2 });
    await waitFor(() => received.length >= 4, 10000, 'the good messages');
    expect(received.map((e) => e.data)).toEqual([
      { n: 1 },
      'plain text',
      { contentType: 'application/octet-stream', encoding: 'base64', body: 'AQID' },
      { n: 2 },
    ]);

    const dead: Array<{ reason: unknown; detail: unknown; routingKey: string }> = [];
    const inspect = await producer.connection.createChannel();
    await waitFor(
      async () => {
        const message = await inspect.get(names.SOCKETBRIDGE_DEAD_LETTER_QUEUE, { noAck: true });
        if (message) {
          const headers = message.properties.headers ?? {};
          dead.push({ reason: headers['x-socketbridge-reason'], detail: headers['x-socketbridge-detail'], routingKey: message.fields.routingKey });
        }
        return dead.length >= 4;
      },
      10000,
      'four dead letters',
    );
    await inspect.close();
    expect(dead.map((d) => d.reason).sort()).toEqual(['oversized', 'unparseable', 'unparseable', 'unroutable']);
    expect(dead.find((d) => d.reason === 'unroutable')).toMatchObject({ routingKey: 'has spaces!', detail: expect.stringContaining('not a channel name') });
    expect(await api.metric('socketbridge_messages_dead_lettered_total', { queue: names.SOCKETBRIDGE_QUEUE, reason: 'unparseable' })).toBe(2);
  });

  it('reconnects by itself after RabbitMQ closes its connection mid-stream, and delivers every message', async () => {
    const { channel, received } = await subscriber(1);
    const total = 5000;
    let closed = false;
    // Found before the stream starts: rabbitmqctl is slow on a busy machine, the close must not be.
    const pid = await publisherConnectionPid(api);
    const consumedBefore = await consumedCount();
    const publishing = (async () => {
      for (let seq = 0; seq < total; seq++) {
        producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json' });
        // Paced (about 10 s in all) so the close lands mid-stream even though rabbitmqctl takes seconds.
        if (seq % 100 === 99) {
          await producer.channel.waitForConfirms();
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      await producer.channel.waitForConfirms();
    })();
    await waitFor(() => received.length >= 1000, 30000, 'the stream to be under way');
    await run('rabbitmqctl', ['close_connection', pid, 'test: closed by the broker side']);
    closed = true;
    const consumedAtClose = (await consumedCount()) - consumedBefore;
    await publishing;
    const seen = new Map<number, number>();
    await waitFor(
      () => {
        for (const envelope of received.splice(0)) {
          const seq = (envelope.data as { seq: number }).seq;
          seen.set(seq, (seen.get(seq) ?? 0) + 1);
        }
        return seen.size === total;
      },
      60000,
      `all ${total} messages (have ${seen.size})`,
      100,
    );
    const duplicates = [...seen.values()].reduce((sum, n) => sum + n - 1, 0);
    console.log(`RabbitMQ connection closed mid-stream: ${total} sent, ${seen.size} delivered, ${duplicates} redelivered duplicates`);
    expect(closed).toBe(true);
    expect(seen.size).toBe(total);
    // Only messages unacked at the close can come twice: at most one prefetch window.
    expect(duplicates).toBeLessThanOrEqual(100);
    expect(consumedAtClose, 'the close landed mid-stream').toBeLessThan(total);
    const publisher = cluster.publishers[0]!;
    await publisher.waitForLog((l) => l.msg === 'rabbitmq connection closed', 10000, 'the close to be noticed');
    const connects = publisher.lines.filter((l) => l.msg === 'connected to rabbitmq');
    expect(connects.length).toBeGreaterThanOrEqual(2);
    // Each time past the dead node to the one that answers.
    for (const line of connects) expect(line.node).toBe(redactUrl(rabbitmqUrl()));
  });
});
