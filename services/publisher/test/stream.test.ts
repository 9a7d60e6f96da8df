import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { queueArguments, registryKeys, type BridgeQueue } from '@socketbridge/common';
import { AmqpProducer, recordingSubscriber, redisUrl, startPublisherTestbed, waitFor, type PublisherTestbed, type RecordingSubscriber } from '@socketbridge/devkit';

/**
 * A bridge on a RabbitMQ stream queue. A stream keeps its messages and cannot requeue: the
 * publisher resumes from the offset it last handled, stored in Redis (docs/scaling.md), so a
 * restart mid-stream neither skips nor repeats a message, even without message ids; poison messages
 * still reach the dead-letter exchange with their reason.
 */
let testbed: PublisherTestbed;
let producer: AmqpProducer;
let subscriber: RecordingSubscriber;
let exchange: string;
let streamQueue: BridgeQueue;
let redis: Redis;

beforeAll(async () => {
  testbed = await startPublisherTestbed('stream');
  exchange = `${testbed.names.SOCKETBRIDGE_EXCHANGE}.routes`;
  streamQueue = {
    name: `${testbed.names.SOCKETBRIDGE_EXCHANGE}.stream`,
    type: 'stream',
    durable: true,
    singleActiveConsumer: false,
    stream: { maxAge: '1h', maxLengthBytes: 50_000_000 },
    bindings: [],
    route: { channel: `${testbed.names.SOCKETBRIDGE_EXCHANGE}.{routingKey}` },
  };
  producer = await AmqpProducer.connect();
  redis = new Redis(redisUrl());
  // As the operator declares it (reconciler.ts: queueArguments).
  await producer.channel.assertExchange(exchange, 'topic', { durable: true });
  await producer.channel.assertQueue(streamQueue.name, { durable: true, arguments: queueArguments(streamQueue) });
  await producer.channel.bindQueue(streamQueue.name, exchange, '#');
  const { name, type, stream, route } = streamQueue;
  const put = await testbed.api.request('PUT', `/v1/bridges/${testbed.names.SOCKETBRIDGE_EXCHANGE}`, {
    queues: [{ name, type, stream, route }],
    // History larger than the run, so its length counts the entries.
    channels: [{ pattern: `${testbed.names.SOCKETBRIDGE_EXCHANGE}.*`, access: 'public', history: { size: 5000, ttlSeconds: 600 } }],
  });
  expect(put.status).toBe(200);
  await testbed.cluster.publishers[0]!.waitForLog((l) => l.msg === 'consuming' && l.queue === name, 20000, 'the publisher to consume the stream');
  subscriber = await recordingSubscriber(testbed.cluster.workers[0]!.port, `${testbed.names.SOCKETBRIDGE_EXCHANGE}.feed`);
}, 60_000);

afterAll(async () => {
  subscriber?.client.close();
  redis?.disconnect();
  await testbed.api.request('DELETE', `/v1/bridges/${testbed.names.SOCKETBRIDGE_EXCHANGE}`).catch(() => undefined);
  await producer?.channel.deleteQueue(streamQueue.name).catch(() => undefined);
  await producer?.channel.deleteExchange(exchange).catch(() => undefined);
  await producer?.close();
  await testbed.teardown();
});

describe('a stream queue bridge', () => {
  it('a publisher restarted mid-stream resumes at its stored offset, one SIGKILLed reads again without a second entry: nothing lost, nothing twice, poison dead-lettered', async () => {
    // No message ids: only the stored offset keeps a message from coming twice.
    const send = async (from: number, to: number) => {
      for (let seq = from; seq < to; seq++) producer.channel.publish(exchange, 'feed', Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json' });
      await producer.channel.waitForConfirms();
    };
    await send(0, 100);
    producer.channel.publish(exchange, 'feed', Buffer.from('{"not json'), { contentType: 'application/json' });
    await send(100, 200);
    await waitFor(() => subscriber.seen.length >= 200, 20000, 'the first 200 messages');

    // Stopped (SIGTERM: it drains and stores its offset), messages arrive meanwhile, a new publisher starts.
    const first = testbed.cluster.publishers[0]!;
    const stored = first.lines.filter((l) => l.msg === 'consuming' && l.queue === streamQueue.name);
    expect(stored.at(-1)?.from).toBe('next');
    await first.stop('SIGTERM');
    await send(200, 300);
    const second = await testbed.cluster.addPublisher();
    const resumed = await second.waitForLog((l) => l.msg === 'consuming' && l.queue === streamQueue.name, 20000, 'the new publisher to consume the stream');
    // 200 good messages and the poison one: the next offset the stream holds for this queue.
    expect(resumed.from).toBe(201);
    await send(300, 400);
    await waitFor(() => subscriber.seen.length >= 400, 20000, 'all 400 messages', 50).catch((error: Error) => {
      throw new Error(`${error.message}: ${subscriber.seen.length} seen, ${JSON.stringify(subscriber.client.stats)}`);
    });

    // SIGKILLed while a burst flows: its stored offset may lag what it appended, so the next one reads
    // some messages again; their ids (the stream offset and content) keep them at one offset each.
    const burst = send(400, 1400);
    await waitFor(() => subscriber.seen.length >= 600, 20000, 'the burst to be under way', 10);
    await second.stop('SIGKILL');
    await burst;
    const third = await testbed.cluster.addPublisher();
    const afterKill = await third.waitForLog((l) => l.msg === 'consuming' && l.queue === streamQueue.name, 20000, 'a third publisher to consume the stream');
    await waitFor(() => new Set(subscriber.seen.map((m) => m.seq)).size >= 1400, 30000, 'all 1,400 messages', 50).catch((error: Error) => {
      throw new Error(`${error.message}: ${new Set(subscriber.seen.map((m) => m.seq)).size} seen, ${JSON.stringify(subscriber.client.stats)}`);
    });
    const historyLength = await redis.xlen(registryKeys.history(`${testbed.names.SOCKETBRIDGE_EXCHANGE}.feed`));

    const seqs = subscriber.seen.map((m) => m.seq);
    expect(seqs).toEqual(Array.from({ length: 1400 }, (_, i) => i));
    expect(historyLength, 'one history entry per message').toBe(1400);
    expect(subscriber.gaps).toEqual([]);

    // A stream cannot dead-letter by reject: the publisher publishes the poison message to the dead-letter exchange itself.
    const inspect = await producer.connection.createChannel();
    let dead: { reason: unknown; queue: unknown } | undefined;
    await waitFor(
      async () => {
        const message = await inspect.get(testbed.names.SOCKETBRIDGE_DEAD_LETTER_QUEUE, { noAck: true });
        if (message) dead = { reason: message.properties.headers?.['x-socketbridge-reason'], queue: message.properties.headers?.['x-socketbridge-queue'] };
        return dead !== undefined;
      },
      10000,
      'the dead letter',
    );
    await inspect.close();
    expect(dead).toEqual({ reason: 'unparseable', queue: streamQueue.name });
    console.log(
      `stream bridge: 1,400 sent around a publisher restart and a SIGKILL, ${new Set(seqs).size} delivered, ${seqs.length - new Set(seqs).size} duplicates, ${historyLength} history entries; resumed at offset ${resumed.from}, after the SIGKILL at ${afterKill.from}`,
    );
  }, 90_000);
});
