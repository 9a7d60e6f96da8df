import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmqpProducer, LocalCluster, TcpBalancer, killAll, rabbitNames, waitFor } from '@socketbridge/devkit';
import { RECONNECT_OPTIONS, SocketBridgeClient } from '../src/index.js';

// The clients of a worker that crashes: back through the balancer and caught up from history within
// seconds (socketcluster-client's own defaults took 10–20 s), and spread out rather than all at once.
const CLIENTS = 2000;
const CHANNELS = 20;
const names = rabbitNames('reconnect');
let cluster: LocalCluster;
let balancer: TcpBalancer;
let producer: AmqpProducer;
const clients: SocketBridgeClient[] = [];
const channel = (i: number) => `${names.SOCKETBRIDGE_EXCHANGE}.r-${i % CHANNELS}`;

beforeAll(async () => {
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 2,
    publishers: 1,
    env: { ...names, SOCKETBRIDGE_PUBLIC_CHANNELS: `${names.SOCKETBRIDGE_EXCHANGE}.*` },
  });
  balancer = new TcpBalancer(() => cluster.live(cluster.workers).map((w) => w.port));
  await balancer.start();
  producer = await AmqpProducer.connect();
});
afterAll(async () => {
  for (const client of clients) client.close();
  await balancer.stop();
  await producer.deleteTopology(names);
  await producer.close();
  await cluster.stop();
  await killAll();
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('reconnecting after a worker crash', () => {
  it(`${CLIENTS} clients: the crashed worker's are back and caught up within 5 s, their reconnects spread over about a second`, async () => {
    const seen = new Map<SocketBridgeClient, Set<string>>();
    for (let i = 0; i < CLIENTS; i++) {
      const client = new SocketBridgeClient({ port: balancer.port });
      clients.push(client);
      const got = new Set<string>();
      seen.set(client, got);
      await client.connected();
      await client.subscribe(channel(i), { onMessage: (envelope) => got.add((envelope.data as { mark: string }).mark) });
    }
    // One message everyone has, so each channel has a place to recover from.
    for (let c = 0; c < CHANNELS; c++) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel(c), { mark: 'before' });
    await waitFor(() => clients.every((client) => seen.get(client)!.has('before')), 30000, 'every client to have the first message');

    const victim = cluster.workers[0]!;
    const dropped = new Set<SocketBridgeClient>();
    const backAt = new Map<SocketBridgeClient, number>();
    const caughtUpAt = new Map<SocketBridgeClient, number>();
    const scheduled = new Map<SocketBridgeClient, number>();
    let killedAt = 0;
    for (const client of clients) {
      void (async () => {
        for await (const _ of client.socket.listener('close')) {
          dropped.add(client);
          // socketcluster-client has just scheduled its reconnect (a documented property).
          scheduled.set(client, client.socket.pendingReconnectTimeout ?? Number.NaN);
          break;
        }
        for await (const _ of client.socket.listener('connect')) {
          backAt.set(client, performance.now() - killedAt);
          break;
        }
      })();
    }
    killedAt = performance.now();
    await victim.stop('SIGKILL');
    // Published while the victim's clients are away: they can only have it from history.
    for (let c = 0; c < CHANNELS; c++) await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel(c), { mark: 'during' });
    for (const client of clients) {
      void waitFor(() => seen.get(client)!.has('during'), 30000, 'the message sent during the outage').then(
        () => caughtUpAt.set(client, performance.now() - killedAt),
        () => undefined,
      );
    }
    await waitFor(() => caughtUpAt.size === CLIENTS, 30000, 'every client to have the message sent during the outage');

    const victims = [...dropped];
    const delays = victims.map((client) => scheduled.get(client)!).sort((a, b) => a - b);
    const back = victims.map((client) => backAt.get(client)!).sort((a, b) => a - b);
    const caughtUp = victims.map((client) => caughtUpAt.get(client)!).sort((a, b) => a - b);
    // 100 ms buckets of the scheduled reconnect delays: the busiest one's share of the victims.
    const buckets = new Map<number, number>();
    for (const t of delays) buckets.set(Math.floor(t / 100), (buckets.get(Math.floor(t / 100)) ?? 0) + 1);
    const busiest = Math.max(...buckets.values()) / victims.length;
    const ms = (n: number) => `${n.toFixed(0)} ms`;
    console.log(
      `worker SIGKILL: ${victims.length} of ${CLIENTS} clients dropped; reconnect scheduled after p10 ${ms(percentile(delays, 10))}, ` +
        `p90 ${ms(percentile(delays, 90))} (busiest 100 ms: ${(busiest * 100).toFixed(1)} %); back p50 ${ms(percentile(back, 50))}, ` +
        `last ${ms(back.at(-1)!)}; caught up p50 ${ms(percentile(caughtUp, 50))}, last ${ms(caughtUp.at(-1)!)}`,
    );

    expect(victims.length).toBeGreaterThan(CLIENTS / 4);
    expect(back.filter((t) => t !== undefined)).toHaveLength(victims.length);
    expect(caughtUp.at(-1)!).toBeLessThan(5000);
    // Each waits the initial delay plus its own share of the jitter, so the victims come back spread
    // over about a second, where socketcluster-client's defaults made them wait 10–20 s.
    const { initialDelay, randomness } = RECONNECT_OPTIONS;
    expect(delays[0]!).toBeGreaterThanOrEqual(initialDelay);
    expect(delays.at(-1)!).toBeLessThanOrEqual(initialDelay + randomness);
    expect(percentile(delays, 90) - percentile(delays, 10)).toBeGreaterThan(randomness / 2);
    expect(busiest).toBeLessThan(0.25);
  }, 180_000);
});
