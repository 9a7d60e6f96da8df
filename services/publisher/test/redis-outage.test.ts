import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AmqpProducer,
  LocalCluster,
  PublisherApi,
  devSecrets,
  freePort,
  killAll,
  rabbitNames,
  spawnCommand,
  waitFor,
  type ManagedProcess,
} from '@socketbridge/devkit';

const names = rabbitNames('redis-outage');
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
  cluster = await LocalCluster.start({ brokers: 1, workers: 1, publishers: 1, env: { ...names, SOCKETBRIDGE_REDIS_URL: `redis://127.0.0.1:${redisPort}` } });
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
});
