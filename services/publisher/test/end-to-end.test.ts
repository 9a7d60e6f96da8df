import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { Redis } from 'ioredis';
import type { AGClientSocket } from 'socketcluster-client';
import type { Envelope } from '@socketbridge/common';
import {
  AmqpProducer,
  LocalCluster,
  PublisherApi,
  connectClient,
  devSecrets,
  handshakeRefusal,
  redisUrl,
  startPublisherTestbed,
  waitFor,
  type PublisherTestbed,
  type RabbitNames,
} from '@socketbridge/devkit';

let testbed: PublisherTestbed;
let names: RabbitNames;
let cluster: LocalCluster;
let api: PublisherApi;
let producer: AmqpProducer;
const sockets: AGClientSocket[] = [];

beforeAll(async () => {
  testbed = await startPublisherTestbed('e2e', { brokers: 2, workers: 2 });
  ({ names, cluster, api } = testbed);
  producer = await AmqpProducer.connect();
});
afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  await producer.close();
  await testbed.teardown();
});

async function client(port: number, token?: string): Promise<AGClientSocket> {
  const socket = await connectClient(port, token ? { token } : {});
  sockets.push(socket);
  return socket;
}

/** Subscribes and collects what arrives; rejects with the refusal if the worker says no. */
async function collect(socket: AGClientSocket, channelName: string): Promise<Envelope[]> {
  const channel = socket.subscribe(channelName);
  const received: Envelope[] = [];
  void (async () => {
    for await (const data of channel) received.push(data as Envelope);
  })();
  const outcome = await Promise.race([
    channel.listener('subscribe').once().then(() => undefined),
    channel.listener('subscribeFail').once().then(({ error }) => error),
  ]);
  if (outcome) throw outcome;
  return received;
}

async function refusal(socket: AGClientSocket, channelName: string): Promise<Error> {
  try {
    await collect(socket, channelName);
  } catch (error) {
    return error as Error;
  }
  throw new Error(`subscription to ${channelName} was allowed`);
}

describe('RabbitMQ to a client, end to end', () => {
  it('the seed API answers', async () => {
    expect(await api.request('GET', '/')).toMatchObject({ status: 200, body: { status: 'up' } });
    const first = await api.request('GET', '/v1/create-rabbit-ch');
    const again = await api.request('GET', '/v1/create-rabbit-ch');
    expect(first.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'consuming', connected: true, queues: [names.SOCKETBRIDGE_QUEUE] });
    // Test mode is off: the fake-data route does not exist.
    expect((await api.request('GET', '/v1/publish-data-over-ch')).status).toBe(404);
    expect((await api.request('GET', '/docs/json')).body).toMatchObject({ openapi: expect.any(String) });
  });

  it("a message with routing key client.<id> reaches that client's socket, once, as an envelope", async () => {
    const created = await api.createClient();
    expect(created.channel).toBe(`client.${created.clientId}`);
    const received = await collect(await client(cluster.workers[0]!.port, created.token), created.channel);
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, created.channel, { price: 42 }, { messageId: 'order-1' });
    await waitFor(() => received.length >= 1, 10000, 'the message');
    // A second, unrelated message as a fence: once it is here, a duplicate of the first would be too.
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, created.channel, { fence: true });
    await waitFor(() => received.length >= 2, 10000, 'the fence');
    expect(received).toHaveLength(2);
    expect(received[0]).toMatchObject({ id: 'order-1', data: { price: 42 }, offset: expect.stringMatching(/^\d+-\d+$/) });
    expect(received[0]!.ts).toBeGreaterThan(Date.now() - 60000);
    expect(received[1]!.offset > received[0]!.offset || received[1]!.offset.length > received[0]!.offset.length).toBe(true);
  });

  it('a burst on one channel goes in batches: each message once, in order, each prev the offset before; fewer appends than messages', async () => {
    const created = await api.createClient();
    const received = await collect(await client(cluster.workers[1]!.port, created.token), created.channel);
    const redis = new Redis(redisUrl(), { lazyConnect: true });
    await redis.connect();
    const appends = async () => {
      const stats = await redis.info('commandstats');
      return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    try {
      const before = await appends();
      const burst = 300;
      await Promise.all(Array.from({ length: burst }, (_, seq) => producer.publish(names.SOCKETBRIDGE_EXCHANGE, created.channel, { seq }, { messageId: `burst-${seq}` })));
      await waitFor(() => received.length >= burst, 20000, 'the burst');
      await producer.publish(names.SOCKETBRIDGE_EXCHANGE, created.channel, { fence: true });
      await waitFor(() => received.length >= burst + 1, 10000, 'the fence');
      const burstReceived = received.slice(0, burst);
      expect(burstReceived.map((e) => (e.data as { seq: number }).seq)).toEqual(Array.from({ length: burst }, (_, i) => i));
      for (let i = 1; i < received.length; i++) expect(received[i]!.prev, `message ${i}`).toBe(received[i - 1]!.offset);
      const used = (await appends()) - before;
      console.log(`burst of ${burst}: ${used} history appends`);
      expect(used).toBeLessThan(burst);
    } finally {
      redis.disconnect();
    }
  });

  it('broadcast messages reach signed-in clients on both workers', async () => {
    const [a, b] = [await api.createClient('A'), await api.createClient('B')];
    const onFirst = await collect(await client(cluster.workers[0]!.port, a.token), 'broadcast');
    const onSecond = await collect(await client(cluster.workers[1]!.port, b.token), 'broadcast');
    for (let i = 0; i < 5; i++) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, 'broadcast', { i });
    await waitFor(() => onFirst.length >= 5 && onSecond.length >= 5, 10000, 'broadcasts on both workers');
    expect(onFirst.map((e) => (e.data as { i: number }).i)).toEqual([0, 1, 2, 3, 4]);
    expect(onSecond.map((e) => e.offset)).toEqual(onFirst.map((e) => e.offset));
  });
});

describe('channel access on the workers', () => {
  it("client A cannot subscribe to client B's channel", async () => {
    const [a, b] = [await api.createClient('A'), await api.createClient('B')];
    const error = await refusal(await client(cluster.workers[0]!.port, a.token), b.channel);
    expect(error).toMatchObject({ name: 'SubscribeRefusedError', message: expect.stringContaining('belongs to another client') });
  });

  it('an unauthenticated socket cannot subscribe to an owner channel or to broadcast', async () => {
    const b = await api.createClient('B');
    const anonymous = await client(cluster.workers[1]!.port);
    expect(await refusal(anonymous, b.channel)).toMatchObject({ name: 'SubscribeRefusedError' });
    expect(await refusal(anonymous, 'broadcast')).toMatchObject({ message: expect.stringContaining('signed-in') });
    expect(await refusal(anonymous, 'no-policy-covers-this')).toMatchObject({ message: expect.stringContaining('no channel policy') });
  });

  it('a client publish is refused', async () => {
    const a = await api.createClient('A');
    const socket = await client(cluster.workers[0]!.port, a.token);
    await expect(socket.invokePublish(a.channel, { forged: true })).rejects.toMatchObject({ name: 'PublishRefusedError' });
  });

  it('forged and expired tokens are refused at the handshake', async () => {
    const a = await api.createClient('A');
    const forged = await new SignJWT({ channels: [a.channel] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(a.clientId)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('not-the-cluster-key-not-the-cluster-key'));
    const expired = await new SignJWT({ channels: [a.channel] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(a.clientId)
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(new TextEncoder().encode(devSecrets.SOCKETBRIDGE_AUTH_KEY!));
    for (const [token, name] of [
      [forged, 'AuthTokenInvalidError'],
      [expired, 'AuthTokenExpiredError'],
      ['not.a.jwt', 'AuthTokenInvalidError'],
    ] as const) {
      expect(await handshakeRefusal(cluster.workers[0]!.port, { token })).toMatchObject({ name });
    }
    // The genuine token still works.
    expect((await client(cluster.workers[0]!.port, a.token)).authState).toBe('authenticated');
  });
});
