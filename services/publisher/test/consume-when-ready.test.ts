import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { AmqpProducer, PublisherApi, devSecrets, redisUrl, startPublisherTestbed, waitFor, type PublisherTestbed } from '@socketbridge/devkit';

/**
 * A publisher that starts with messages waiting in its queue takes none of them before its cluster
 * link is ready: taken earlier, each would fail for want of a broker shard and wait out the requeue
 * delay. The state server is stopped (SIGSTOP) while a second publisher starts, so that publisher
 * has RabbitMQ but no broker mapping until the state server resumes.
 */
const CHANNELS = 10;
const PER_CHANNEL = 20;
let testbed: PublisherTestbed;
let producer: AmqpProducer;
let redis: Redis;
const channels: string[] = [];
/** What the second publisher printed, for the point at which it has RabbitMQ. */
const secondLines: string[] = [];

beforeAll(async () => {
  // The first publisher never consumes: it only stands for the REST API the testbed brings.
  testbed = await startPublisherTestbed('ready', {
    env: { SOCKETBRIDGE_CONSUME_ON_START: 'false', SOCKETBRIDGE_PUBLIC_CHANNELS: 'ready.*', SOCKETBRIDGE_REQUEUE_DELAY_MS: '200' },
    onLine: (name, line) => void (name === 'publisher-2' && secondLines.push(line)),
  });
  producer = await AmqpProducer.connect();
  redis = new Redis(redisUrl());
  const { names } = testbed;
  for (let i = 0; i < CHANNELS; i++) channels.push(`ready.${names.SOCKETBRIDGE_EXCHANGE}-${i}`);
  // The publisher's own topology, declared as it declares it, and filled before it starts.
  await producer.channel.assertExchange(names.SOCKETBRIDGE_EXCHANGE, 'topic', { durable: true });
  await producer.channel.assertQueue(names.SOCKETBRIDGE_QUEUE, { durable: true });
  await producer.channel.bindQueue(names.SOCKETBRIDGE_QUEUE, names.SOCKETBRIDGE_EXCHANGE, '#');
  for (let n = 0; n < PER_CHANNEL; n++) {
    for (const channel of channels) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, { n });
  }
}, 60_000);

afterAll(async () => {
  testbed.cluster.state.child.kill('SIGCONT');
  await testbed.teardown();
  await producer.close();
  for (const channel of channels) await redis.del(registryKeys.history(channel), registryKeys.historyIds(channel));
  redis.disconnect();
});

describe('consuming once the cluster can take messages', () => {
  it('takes waiting messages only once its cluster link is ready, and requeues none', async () => {
    testbed.cluster.state.child.kill('SIGSTOP');
    const adding = testbed.cluster.addPublisher({ SOCKETBRIDGE_CONSUME_ON_START: 'true' });
    try {
      await waitFor(() => secondLines.some((line) => line.includes('connected to rabbitmq')), 20000, 'the second publisher to reach RabbitMQ');
      // Connected and declared, but no broker mapping: it must not take messages yet.
      await waitFor(() => secondLines.some((line) => line.includes('waiting for the cluster before consuming')), 5000, 'the publisher to wait for the cluster');
    } finally {
      testbed.cluster.state.child.kill('SIGCONT');
    }
    const second = await adding;
    const lengths = async () => Promise.all(channels.map((channel) => redis.xlen(registryKeys.history(channel))));
    await waitFor(async () => (await lengths()).every((n) => n === PER_CHANNEL), 20000, 'every waiting message in history');
    const api = new PublisherApi(`http://127.0.0.1:${second.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
    const counter = async (name: string) => (await api.metric(name, { queue: testbed.names.SOCKETBRIDGE_QUEUE })) ?? NaN;
    expect(await counter('socketbridge_messages_requeued_total')).toBe(0);
    expect(await counter('socketbridge_messages_consumed_total')).toBe(CHANNELS * PER_CHANNEL);
    expect(await lengths()).toEqual(Array(CHANNELS).fill(PER_CHANNEL));
  });
});
