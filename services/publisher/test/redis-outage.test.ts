import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AmqpProducer,
  LocalCluster,
  PublisherApi,
  devSecrets,
  freePort,
  killAll,
  rabbitNames,
  recordingSubscriber,
  spawnCommand,
  waitFor,
  type ManagedProcess,
} from '@socketbridge/devkit';

const names = rabbitNames('redis-outage');
// Above the publisher's Redis reconnect back-off (tries 0.2, 0.6, 1.4, 3.0, 6.2 s after a loss),
// so the first, short outage stays within it on a busy machine.
const RETRY_MS = 8000;
let cluster: LocalCluster;
let api: PublisherApi;
let redisPort: number;
let redis: ManagedProcess;

/** A private Redis this test may stop and start: the machine's own serves the other tests. */
async function startRedis(): Promise<ManagedProcess> {
  const server = spawnCommand('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitFor(() => server.raw.some((line) => line.includes('Ready to accept connections')), 10000, 'redis to start');
  return server;
}

beforeAll(async () => {
  redisPort = await freePort();
  redis = await startRedis();
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    publishers: 1,
    // A short in-place retry, so the test sees both sides of it: an outage within it, one past it.
    env: { ...names, SOCKETBRIDGE_REDIS_URL: `redis://127.0.0.1:${redisPort}`, SOCKETBRIDGE_PUBLISH_RETRY_MS: String(RETRY_MS), SOCKETBRIDGE_PUBLIC_CHANNELS: 'outage.*' },
  });
  api = new PublisherApi(`http://127.0.0.1:${cluster.publishers[0]!.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
});
afterAll(async () => {
  const producer = await AmqpProducer.connect();
  await producer.deleteTopology(names);
  await producer.close();
  await cluster.stop();
  await killAll();
});

describe('Redis unavailable', () => {
  it('fails /readyz and answers registry routes with 503, crashes nothing, and recovers when Redis is back', async () => {
    await waitFor(async () => (await api.request('GET', '/readyz')).status === 200, 20000, 'the publisher to be ready');
    expect((await api.createClient()).clientId).toEqual(expect.any(String));

    await redis.stop('SIGKILL');
    await waitFor(async () => (await api.request('GET', '/readyz')).status === 503, 10000, '/readyz to fail');
    expect((await api.request('GET', '/readyz')).body).toMatchObject({ reasons: expect.arrayContaining(['redis unavailable']) });
    const refused = await api.request('POST', '/v1/create-channel-client', { name: 'Late', email: 'late@example.test', password: 'long enough password' });
    expect(refused).toMatchObject({ status: 503, body: { error: 'ServiceUnavailable' } });
    expect((await api.request('POST', '/v1/tokens', { email: 'late@example.test', password: 'long enough password' })).status).toBe(503);
    expect((await api.request('POST', '/v1/publish', { channel: 'broadcast', data: 1 })).status).toBe(503);
    expect((await api.request('GET', '/')).status).toBe(200);
    expect(cluster.publishers[0]!.running).toBe(true);

    redis = await startRedis();
    await waitFor(async () => (await api.request('GET', '/readyz')).status === 200, 20000, '/readyz to recover');
    expect((await api.request('POST', '/v1/create-channel-client', { name: 'Late', email: 'late@example.test', password: 'long enough password' })).status).toBe(201);
    expect((await api.request('POST', '/v1/publish', { channel: 'broadcast', data: 1 })).status).toBe(202);
  });

  it('AMQP messages taken while Redis is away wait in place and arrive in order; past SOCKETBRIDGE_PUBLISH_RETRY_MS they are requeued, none lost', async () => {
    await waitFor(async () => (await api.request('GET', '/readyz')).status === 200, 20000, 'the publisher to be ready');
    const publisher = cluster.publishers[0]!;
    const requeued = async () => (await api.metric('socketbridge_messages_requeued_total', { queue: names.SOCKETBRIDGE_QUEUE })) ?? 0;
    const live = await recordingSubscriber(cluster.workers[0]!.port, 'outage.feed');
    const producer = await AmqpProducer.connect();
    try {
      // Within the retry time: held by the publisher, not requeued, and in RabbitMQ's order.
      await redis.stop('SIGKILL');
      for (let seq = 0; seq < 10; seq++) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, 'outage.feed', { seq }, { messageId: `outage:${seq}` });
      await publisher.waitForLog((l) => String(l.msg).startsWith('could not publish: trying again'), 10000, 'the publisher to hold a message it could not append');
      // A REST publish to that channel answers 503 at once rather than wait behind the held messages.
      const asked = Date.now();
      expect((await api.request('POST', '/v1/publish', { channel: 'outage.feed', data: { seq: -1 } })).status).toBe(503);
      expect(Date.now() - asked).toBeLessThan(2000);
      redis = await startRedis();
      await waitFor(() => live.seen.length >= 10, 20000, 'ten messages once Redis is back');
      expect(live.seen.map((m) => m.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
      expect(await requeued()).toBe(0);

      // Past it: handed back to RabbitMQ, and delivered once Redis is back (each once).
      await redis.stop('SIGKILL');
      for (let seq = 10; seq < 15; seq++) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, 'outage.feed', { seq }, { messageId: `outage:${seq}` });
      await publisher.waitForLog((l) => l.msg === 'could not publish: requeueing', RETRY_MS + 10000, 'the publisher to requeue past the retry time');
      expect(await requeued()).toBeGreaterThan(0);
      redis = await startRedis();
      await waitFor(() => live.seen.length >= 15, 30000, 'the requeued messages once Redis is back');
      expect(live.seen.map((m) => m.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 15 }, (_, i) => i));

      // A publisher asked to stop holds nothing back for its retry time (a minute here): SIGTERM
      // during the outage hands the message back to RabbitMQ and exits at once, not after its
      // drain timeout, and the other publisher delivers it once Redis is back.
      const second = await cluster.addPublisher({ SOCKETBRIDGE_PUBLISH_RETRY_MS: '60000' });
      await waitFor(async () => (await fetch(`http://127.0.0.1:${second.port}/readyz`)).status === 200, 20000, 'the second publisher to be ready');
      await redis.stop('SIGKILL');
      for (let seq = 15; seq < 20; seq++) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, 'outage.feed', { seq }, { messageId: `outage:${seq}` });
      await second.waitForLog((l) => String(l.msg).startsWith('could not publish: trying again'), 10000, 'the second publisher to hold a message');
      const stopping = Date.now();
      expect(await second.stop('SIGTERM', 20000)).toEqual({ code: 0, signal: null });
      const stopMs = Date.now() - stopping;
      console.log(`publisher holding messages in a Redis outage: exited ${stopMs} ms after SIGTERM`);
      expect(stopMs).toBeLessThan(5000); // its drain timeout is 15 s, its retry time 60 s
      redis = await startRedis();
      await waitFor(() => live.seen.length >= 20, 30000, 'the handed-back messages once Redis is back');
      expect(live.seen.map((m) => m.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    } finally {
      live.client.close();
      await producer.close();
    }
  }, 90_000);
});
