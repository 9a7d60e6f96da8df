import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import {
  AmqpProducer,
  publisherConnectionPid,
  recordingSubscriber,
  redisUrl,
  startPublisherTestbed,
  waitFor,
  type PublisherTestbed,
  type RecordingSubscriber,
} from '@socketbridge/devkit';

const run = promisify(execFile);

/**
 * Messages without a messageId redelivered by RabbitMQ after the publisher appended them but before
 * it acked: each keeps its one history offset (docs/reliability.md), and two identical publishes
 * stay two messages. The redelivery is real: the broker shard is stopped (SIGSTOP) so the appended
 * messages wait for it unacked, and RabbitMQ closes the publisher's connection (rabbitmqctl). On a
 * classic default queue and on a quorum one (which marks a redelivery with x-delivery-count too).
 */
let testbed: PublisherTestbed;
let quorumTestbed: PublisherTestbed;
let producer: AmqpProducer;
let redis: Redis;
const subscribers: RecordingSubscriber[] = [];
const CHANNELS = 8;
const PREFIX = `redeliver-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  testbed = await startPublisherTestbed('redeliver', { env: { SOCKETBRIDGE_PUBLIC_CHANNELS: `${PREFIX}.#` } });
  quorumTestbed = await startPublisherTestbed('redeliver-quorum', { env: { SOCKETBRIDGE_PUBLIC_CHANNELS: `${PREFIX}.#`, SOCKETBRIDGE_QUEUE_TYPE: 'quorum' } });
  producer = await AmqpProducer.connect();
  redis = new Redis(redisUrl());
}, 60_000);

afterAll(async () => {
  for (const bed of [testbed, quorumTestbed]) bed?.cluster.brokers[0]?.child.kill('SIGCONT');
  for (const s of subscribers) s.client.close();
  redis?.disconnect();
  await producer?.close();
  await testbed?.teardown();
  await quorumTestbed?.teardown();
});

describe.each([
  ['classic', () => testbed],
  ['quorum', () => quorumTestbed],
])('redelivered messages without a messageId, %s default queue', (kind, bed) => {
  it('keep their first offset; two identical publishes stay two', async () => {
    const testbed = bed();
    const channels = Array.from({ length: CHANNELS }, (_, i) => `${PREFIX}.${kind}-c${i}`);
    for (const channel of channels) subscribers.push(await recordingSubscriber(testbed.cluster.workers[0]!.port, channel));

    // The shard stops answering: each channel's first message is appended, then waits for the
    // shard's ack, unacked to RabbitMQ; the rest of the channel queues behind it.
    const broker = testbed.cluster.brokers[0]!;
    broker.child.kill('SIGSTOP');
    for (const channel of channels) {
      // Twice the same message (same body, properties, routing key): two publishes, two messages.
      for (let copy = 0; copy < 2; copy++) producer.channel.publish(testbed.names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from('{"same":true}'), { contentType: 'application/json' });
    }
    await producer.channel.waitForConfirms();
    const lengths = async () => Promise.all(channels.map((channel) => redis.xlen(registryKeys.history(channel))));
    await waitFor(async () => (await lengths()).every((n) => n >= 1), 10000, "each channel's first message to be appended", 50);

    await run('rabbitmqctl', ['close_connection', await publisherConnectionPid(testbed.api), 'test: closed before the ack']);
    await testbed.cluster.publishers[0]!.waitForLog((l) => l.msg === 'rabbitmq connection closed', 10000, 'the close to be noticed');
    broker.child.kill('SIGCONT');
    await waitFor(() => subscribers.every((s) => s.seen.length >= 2), 20000, 'both messages on every channel', 50).catch((error: Error) => {
      throw new Error(`${error.message}: ${subscribers.map((s) => s.seen.length).join(',')}`);
    });
    // Redelivered messages come back on the new connection; wait until RabbitMQ holds none for us.
    await waitFor(async () => (await producer.channel.checkQueue(testbed.names.SOCKETBRIDGE_QUEUE)).messageCount === 0, 10000, 'the queue to drain');
    const consumed = await consumedTotal(testbed);

    // Each channel's history holds two entries: the redelivered ones kept their offsets, the twins are two.
    expect(await lengths()).toEqual(channels.map(() => 2));
    for (const s of subscribers) {
      expect(s.seen).toHaveLength(2);
      expect(new Set(s.seen.map((m) => m.offset)).size).toBe(2);
    }
    const redelivered = consumed - 2 * CHANNELS;
    console.log(`redelivery without messageId, ${kind} queue: ${2 * CHANNELS} published, ${consumed} consumed (${redelivered} redelivered), ${CHANNELS * 2} history entries, each client 2 of 2`);
    expect(redelivered, 'RabbitMQ redelivered the appended, unacked messages').toBeGreaterThanOrEqual(CHANNELS);
  }, 60_000);
});

describe('a message without a messageId', () => {
  it('costs the publisher one Redis call: the append script records its id, no SET of its own', async () => {
    const channel = `${PREFIX}.cost`;
    const subscriber = await recordingSubscriber(testbed.cluster.workers[0]!.port, channel);
    subscribers.push(subscriber);
    // Every command Redis runs on this channel's keys, by who sent it: a client, or a Lua script.
    const monitor = await redis.monitor();
    const fromClients: string[][] = [];
    const fromScripts: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (args.some((arg) => arg.includes(channel))) (source === 'lua' ? fromScripts : fromClients).push(args);
    });
    try {
      const MESSAGES = 5;
      // One at a time, so each is a step of its own (no batch shares a call).
      for (let seq = 0; seq < MESSAGES; seq++) {
        producer.channel.publish(testbed.names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json' });
        await waitFor(() => subscriber.seen.length === seq + 1, 10000, `message ${seq} to arrive`, 20);
      }
      // EVAL only where the script was not loaded yet (NOSCRIPT), after an EVALSHA: not a call of its own.
      const calls = () => fromClients.filter(([command]) => command!.toLowerCase() !== 'eval');
      await waitFor(() => calls().length >= MESSAGES, 5000, 'MONITOR to report every append', 20);
      expect(calls().map(([command, , , ...rest]) => [command!.toLowerCase(), rest.some((arg) => arg.includes('history-redelivery'))])).toEqual(
        Array.from({ length: MESSAGES }, () => ['evalsha', true]),
      );
      const recorded = fromScripts.filter(([command, key]) => command!.toLowerCase() === 'set' && key!.startsWith(registryKeys.redeliveryId(channel, '')));
      expect(recorded).toHaveLength(MESSAGES);
    } finally {
      monitor.disconnect();
    }
  }, 30_000);
});

/** How many deliveries the publisher took from the testbed's queue (first ones and redeliveries). */
async function consumedTotal(testbed: PublisherTestbed): Promise<number> {
  return (await testbed.api.metric('socketbridge_messages_consumed_total', { queue: testbed.names.SOCKETBRIDGE_QUEUE })) ?? 0;
}
