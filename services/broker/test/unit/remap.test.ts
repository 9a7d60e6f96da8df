import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import AGSimpleBroker from 'ag-simple-broker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry, createLogger, joinCluster, waitUntil, type ClusterLink } from '@socketbridge/common';
import { loadBrokerConfig } from '../../src/config.js';
import { startBroker, type BrokerServer } from '../../src/server.js';

// The lossless hand-over (common/src/cluster-link.ts) in one process: two real broker shards and two
// cluster links (a publisher and a subscriber, as scc-broker-client runs them), each told of the new
// broker set at a different instant, as state server pushes reach members. No state server: the
// test calls setBrokers itself, which is what a push does, so it controls the lag between members.
const authKey = `remap-${randomUUID()}`;
const logger = createLogger('remap-test', 'silent');
const timers = { switchDelayMs: 300, graceMs: 300, confirmTimeoutMs: 2000 };
const CHANNELS = Array.from({ length: 20 }, (_, i) => `remap.${i}`);

/** A port nothing listens on, from the OS: the state server the shards and links never reach. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let statePort = 0;
const brokers: BrokerServer[] = [];
const uri = (broker: BrokerServer) => `ws://127.0.0.1:${broker.port}`;

function link(): ClusterLink {
  return joinCluster(new AGSimpleBroker(), {
    instanceId: randomUUID(),
    instancePort: 1,
    instanceIp: '127.0.0.1',
    instanceIpFamily: 'IPv4',
    stateServerHost: '127.0.0.1',
    stateServerPort: statePort,
    authKey,
    logger,
    ...timers,
  });
}

beforeAll(async () => {
  statePort = await closedPort();
  const config = loadBrokerConfig({
    SCC_AUTH_KEY: authKey,
    SOCKETBRIDGE_OPS_KEY: `ops-${randomUUID()}`,
    SCC_BROKER_SERVER_PORT: '0',
    SOCKETBRIDGE_HOST: '127.0.0.1',
    SCC_STATE_SERVER_PORT: String(statePort),
  });
  for (let i = 0; i < 2; i++) brokers.push(await startBroker(config, logger, new Registry()));
});

afterAll(async () => {
  await Promise.all(brokers.map((broker) => broker.close()));
});

/**
 * One broker joins while the publisher keeps publishing on 20 channels; the member named first
 * hears of it `lagMs` before the other. Returns how often the subscriber received each message.
 */
async function handOver(first: 'publisher' | 'subscriber', lagMs: number) {
  const publisher = link();
  const subscriber = link();
  const received = new Map<string, number>();
  void (async () => {
    for await (const event of subscriber.client.listener('message')) {
      const { channel, packet } = event as { channel: string; packet: { messages: number[] } };
      for (const seq of packet.messages) received.set(`${channel}/${seq}`, (received.get(`${channel}/${seq}`) ?? 0) + 1);
    }
  })();

  for (const member of [publisher, subscriber]) member.client.setBrokers([uri(brokers[0]!)]);
  for (const channel of CHANNELS) await subscriber.ensureSubscribed(channel, 5000);
  // ensureSubscribed counts a shard not yet connected as done (a worker meets that only at start-up): wait for the broker's word.
  const pool = subscriber.client.sccBrokerClientPools[uri(brokers[0]!)]!;
  expect(await waitUntil(() => CHANNELS.every((channel) => pool.isSubscribed(channel, false)), 5000, 10)).toBe(true);

  let seq = 0;
  let publishing = true;
  const sent: string[] = [];
  const feed = (async () => {
    while (publishing && seq < 5000) {
      const n = seq++;
      await Promise.all(CHANNELS.map(async (channel) => {
        await publisher.publish(channel, [n]);
        sent.push(`${channel}/${n}`);
      }));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();

  await waitUntil(() => seq >= 10, 5000, 5);
  const both = [uri(brokers[0]!), uri(brokers[1]!)];
  const [early, late] = first === 'publisher' ? [publisher, subscriber] : [subscriber, publisher];
  early.client.setBrokers(both);
  await new Promise((resolve) => setTimeout(resolve, lagMs));
  late.client.setBrokers(both);
  // Past the switch and the grace period of both members, so the old subscriptions are gone.
  await new Promise((resolve) => setTimeout(resolve, timers.switchDelayMs + timers.graceMs + lagMs + 300));
  publishing = false;
  await feed;

  const arrived = await waitUntil(() => sent.every((key) => received.has(key)), 5000, 20);
  for (const member of [publisher, subscriber]) for (const pool of Object.values(member.client.sccBrokerClientPools)) pool.destroy();
  const moved = CHANNELS.filter((channel) => subscriber.client.mapChannelNameToBrokerURI(channel) === uri(brokers[1]!));
  return { arrived, sent, received, moved };
}

describe('the lossless broker hand-over', () => {
  for (const first of ['publisher', 'subscriber'] as const) {
    it(`loses nothing and duplicates nothing when the ${first} hears of a new broker 150 ms first`, async () => {
      const { arrived, sent, received, moved } = await handOver(first, 150);
      // Some channels must have moved to the new shard, or the test proves nothing.
      expect(moved.length).toBeGreaterThan(0);
      expect(sent.length).toBeGreaterThan(CHANNELS.length * 20);
      expect(sent.filter((key) => !received.has(key))).toEqual([]);
      expect(arrived).toBe(true);
      expect([...received.values()].filter((count) => count !== 1)).toEqual([]);
    });
  }
});
