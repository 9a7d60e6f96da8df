import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { registryKeys, type Envelope } from '@socketbridge/common';
import { AmqpProducer, LocalCluster, PublisherApi, TcpBalancer, devSecrets, killAll, opsFetch, rabbitNames, redisUrl, waitFor } from '@socketbridge/devkit';
import { SocketBridgeClient } from '../src/index.js';

const names = rabbitNames('recovery');
let cluster: LocalCluster;
let balancer: TcpBalancer;
let producer: AmqpProducer;
let api: PublisherApi;
const clients: SocketBridgeClient[] = [];
const redis = new Redis(redisUrl(), { lazyConnect: true });

beforeAll(async () => {
  cluster = await LocalCluster.start({
    brokers: 2,
    workers: 2,
    publishers: 1,
    env: { ...names, SOCKETBRIDGE_PUBLIC_CHANNELS: `${names.SOCKETBRIDGE_EXCHANGE}.*`, SOCKETBRIDGE_MAX_OUTBOUND_BYTES: String(1024 * 1024) },
  });
  balancer = new TcpBalancer(() => cluster.live(cluster.workers).map((w) => w.port));
  await balancer.start();
  producer = await AmqpProducer.connect();
  api = new PublisherApi(`http://127.0.0.1:${cluster.publishers[0]!.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
  await redis.connect();
});
afterAll(async () => {
  for (const client of clients) client.close();
  await balancer.stop();
  await producer.deleteTopology(names);
  await producer.close();
  redis.disconnect();
  await cluster.stop();
  await killAll();
});

const room = (i: number) => `${names.SOCKETBRIDGE_EXCHANGE}.room-${i}`;

/** A client through the balancer that records, per channel, the sequence numbers in arrival order. */
async function recordingClient(channels: string[]) {
  const client = new SocketBridgeClient({ port: balancer.port, socketOptions: { autoReconnectOptions: { initialDelay: 100, maxDelay: 500, randomness: 100 } } });
  clients.push(client);
  await client.connected();
  const seen = new Map<string, number[]>(channels.map((c) => [c, []]));
  const gaps: string[] = [];
  const closeCodes: number[] = [];
  void (async () => {
    for await (const { code } of client.socket.listener('close')) closeCodes.push(code);
  })();
  for (const channel of channels) {
    await client.subscribe(channel, {
      onMessage: (envelope: Envelope) => seen.get(channel)!.push((envelope.data as { seq: number }).seq),
      onGap: (gap) => gaps.push(gap.channel),
    });
  }
  return { client, seen, gaps, closeCodes };
}

/** Publishes `{seq}` rounds on every channel through RabbitMQ with message ids, at a bounded rate. */
function publishRounds(channels: string[], rounds: number, intervalMs: number, idPrefix = 'm') {
  let sent = 0;
  const done = (async () => {
    for (let seq = 0; seq < rounds; seq++) {
      for (const channel of channels) {
        producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), {
          contentType: 'application/json',
          messageId: `${idPrefix}:${channel}:${seq}`,
        });
      }
      await producer.channel.waitForConfirms();
      sent = seq + 1;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return { done, sent: () => sent };
}

const complete = (list: number[], n: number) => list.length === n && list.every((seq, i) => seq === i);

describe('recovery: every message exactly once and in order', () => {
  it('across a worker SIGKILL and a worker drain (SIGTERM)', async () => {
    const channels = [room(0), room(1), room(2), room(3)];
    const subscribers = await Promise.all(Array.from({ length: 8 }, () => recordingClient(channels)));
    const rounds = 300;
    const stream = publishRounds(channels, rounds, 15);
    await waitFor(() => stream.sent() >= 60, 20000, 'the stream to be under way');
    await cluster.workers[0]!.stop('SIGKILL');
    await waitFor(() => stream.sent() >= 140, 20000, 'more messages after the kill');
    await cluster.addWorker();
    await cluster.waitForMembers();
    await cluster.workers[1]!.stop('SIGTERM', 20000);
    await stream.done;
    await waitFor(
      () => subscribers.every((s) => channels.every((c) => s.seen.get(c)!.length >= rounds)),
      30000,
      'every subscriber to hold every message',
      100,
    ).catch((error: Error) => {
      const state = subscribers.map((s) => `${channels.map((c) => s.seen.get(c)!.length).join('/')} ${JSON.stringify(s.client.stats)} ${s.client.socket.state}`);
      throw new Error(`${error.message}\n${state.join('\n')}`);
    });
    for (const s of subscribers) {
      for (const channel of channels) expect(complete(s.seen.get(channel)!, rounds), `${channel}: ${s.seen.get(channel)!.join(',')}`).toBe(true);
      expect(s.gaps).toEqual([]);
    }
    const totals = subscribers.reduce(
      (sum, s) => ({ recovered: sum.recovered + s.client.stats.recovered, duplicates: sum.duplicates + s.client.stats.duplicates }),
      { recovered: 0, duplicates: 0 },
    );
    console.log(`worker kill + drain: ${subscribers.length} clients × ${channels.length} channels × ${rounds} messages, all exactly once in order; recovered ${totals.recovered}, duplicates dropped ${totals.duplicates}`);
    expect(totals.recovered).toBeGreaterThan(0);
    // The drained worker told its clients to go with the drain code.
    expect(subscribers.some((s) => s.closeCodes.includes(4100))).toBe(true);
  });

  it('reports a gap when history no longer reaches back, and carries on', async () => {
    const channel = room(9);
    const { client, seen, gaps } = await recordingClient([channel]);
    const first = publishRounds([channel], 5, 0);
    await first.done;
    await waitFor(() => seen.get(channel)!.length === 5, 10000, 'the first five');
    client.socket.disconnect();
    const second = publishRounds([channel], 5, 0, 'second');
    await second.done;
    // History expires while the client is away (as a TTL would do it).
    await redis.del(registryKeys.history(channel));
    client.socket.connect();
    const third = publishRounds([channel], 3, 0, 'third');
    await third.done;
    await waitFor(() => gaps.length === 1 && seen.get(channel)!.length >= 6, 10000, 'the gap report and the next messages').catch((error: Error) => {
      throw new Error(`${error.message}: gaps ${JSON.stringify(gaps)}, seen ${JSON.stringify(seen.get(channel))}, stats ${JSON.stringify(client.stats)}, ${client.socket.state}`);
    });
    expect(gaps).toEqual([channel]);
    expect(client.stats.gaps).toBe(1);
  });
});

describe('slow clients', () => {
  it('a socket that stops reading is evicted; the worker stays small and others keep receiving', async () => {
    const worker = cluster.live(cluster.workers)[0]!;
    const channel = room(20);
    const healthy = await recordingClient([channel]);
    // A raw SocketCluster client that subscribes and then never reads again.
    const slow = new WebSocket(`ws://127.0.0.1:${worker.port}/socketcluster/`);
    await new Promise((resolve, reject) => slow.once('open', resolve).once('error', reject));
    slow.send(JSON.stringify({ event: '#handshake', data: {}, cid: 1 }));
    slow.send(JSON.stringify({ event: '#subscribe', data: { channel }, cid: 2 }));
    await waitFor(async () => {
      const text = (await (await opsFetch(`http://127.0.0.1:${worker.port}/metrics`)).text());
      return /socketbridge_subscriptions\{[^}]*\} [2-9]/.test(text);
    }, 10000, 'the slow socket to subscribe');
    const closed = new Promise<number>((resolve) => slow.once('close', (code) => resolve(code)));
    (slow as unknown as { _socket: { pause(): void } })._socket.pause();

    const blob = 'x'.repeat(60 * 1024);
    let published = 0;
    const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${worker.child.pid}/status`, 'utf8'))?.[1] ?? 0);
    let maxRss = 0;
    await waitFor(
      async () => {
        await api.request('POST', '/v1/publish', { channel, data: { seq: published, blob } });
        published++;
        maxRss = Math.max(maxRss, rssKiB());
        const metrics = (await (await opsFetch(`http://127.0.0.1:${worker.port}/metrics`)).text());
        return /socketbridge_evictions_total\{reason="slow"[^}]*\} [1-9]/.test(metrics) || published >= 2000;
      },
      60000,
      'the slow client to be evicted',
      0,
    );
    const evictedAfter = published;
    expect(evictedAfter).toBeLessThan(2000);
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    const code = await closed;
    // The healthy client got everything, in order, while the slow one was evicted.
    await waitFor(() => healthy.seen.get(channel)!.length === published, 20000, 'the healthy client to catch up');
    expect(complete(healthy.seen.get(channel)!, published)).toBe(true);
    console.log(`slow client evicted after ${evictedAfter} × 60 KiB messages (close code ${code}); worker peak RSS ${Math.round(maxRss / 1024)} MiB`);
    // Bound: the 1 MiB outbound limit plus the kernel's socket buffers, on a worker idling near 80 MiB.
    expect(maxRss).toBeLessThan(250 * 1024);
  });
});
