import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AmqpProducer,
  LocalCluster,
  PublisherApi,
  RabbitCluster,
  confirmedStream,
  finishStream,
  devSecrets,
  killAll,
  longestStall,
  rabbitNames,
  recordingSubscribers,
  waitFor,
  type RabbitNode,
} from '@socketbridge/devkit';
import type { SocketBridgeClient } from '../src/index.js';

/**
 * A three-node RabbitMQ cluster of the test's own (devkit's RabbitCluster: the installed
 * rabbitmq-server on free ports), a quorum-queue bridge, and the publisher configured with all three
 * nodes, the first being the node that leads the quorum queue. That node is SIGKILLed mid-stream:
 * the publisher reconnects to the next node, the queue elects a new leader on a survivor, and
 * every recovering client gets every message once (docs/scaling.md).
 */
const names = rabbitNames('rabbit-cluster');
const QUEUE = `${names.SOCKETBRIDGE_EXCHANGE}.quorum`;
const ROUTES = `${names.SOCKETBRIDGE_EXCHANGE}.routes`;
const BRIDGE = `${names.SOCKETBRIDGE_EXCHANGE}-bridge`;
let rabbit: RabbitCluster;
let leader: RabbitNode;
let cluster: LocalCluster;
let api: PublisherApi;
let producer: AmqpProducer;
const clients: Array<Pick<SocketBridgeClient, 'close'>> = [];
let stopStream: () => Promise<void> = async () => undefined;

/** The node that leads `QUEUE` now, as `node` sees it. */
async function queueLeader(node: RabbitNode): Promise<string | undefined> {
  const rows = await rabbit.listQueues(node, ['name', 'leader']);
  return rows.find(([name]) => name === QUEUE)?.[1];
}

beforeAll(async () => {
  rabbit = await RabbitCluster.start({ size: 3, timeoutMs: 90_000 });
  // Declared through the first node: a quorum queue's leader starts on the declaring node (client-local).
  const setup = await AmqpProducer.connect(rabbit.nodes[0]!.url);
  await setup.channel.assertExchange(ROUTES, 'topic', { durable: true });
  await setup.channel.assertQueue(QUEUE, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await setup.channel.bindQueue(QUEUE, ROUTES, '#');
  await setup.close();
  const leaderName = await queueLeader(rabbit.nodes[0]!);
  leader = rabbit.nodes.find((node) => node.name === leaderName)!;
  expect(leader, `leader ${leaderName}`).toBeDefined();

  // The leader's node first in the list: the publisher's connection and the queue's leader share a node.
  const order = [leader, ...rabbit.nodes.filter((node) => node !== leader)];
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    publishers: 1,
    env: { ...names, SOCKETBRIDGE_RABBITMQ_URL: rabbit.url(order), SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS: '2000' },
  });
  api = new PublisherApi(`http://127.0.0.1:${cluster.publishers[0]!.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
  const put = await api.request('PUT', `/v1/bridges/${BRIDGE}`, {
    queues: [{ name: QUEUE, route: { channel: `${names.SOCKETBRIDGE_EXCHANGE}.{routingKey}` } }],
    channels: [{ pattern: `${names.SOCKETBRIDGE_EXCHANGE}.*`, access: 'public' }],
  });
  expect(put.status).toBe(200);
  await cluster.publishers[0]!.waitForLog((l) => l.msg === 'consuming' && l.queue === QUEUE, 20000, 'the publisher to consume the quorum queue');
  // The producer on a node that stays up, as a producer of a cluster would be after its own reconnect.
  producer = await AmqpProducer.connect(order[2]!.url);
}, 180_000);

afterAll(async () => {
  await stopStream();
  for (const client of clients) client.close();
  await api?.request('DELETE', `/v1/bridges/${BRIDGE}`).catch(() => undefined);
  await producer?.close().catch(() => undefined);
  await cluster?.stop();
  await killAll();
  await rabbit?.stop();
}, 60_000);

describe('a three-node RabbitMQ cluster', () => {
  it('the node holding the publisher connection and the quorum queue leader SIGKILLed: every message once, none lost', async () => {
    const publisher = cluster.publishers[0]!;
    const connects = () => publisher.lines.filter((l) => l.msg === 'connected to rabbitmq');
    expect(connects().at(-1)?.node).toBe(leader.url.replace(/:[^:@/]*@/, ':***@'));

    const channel = `${names.SOCKETBRIDGE_EXCHANGE}.feed`;
    const subscribers = await recordingSubscribers(cluster.workers[0]!.port, channel, 3);
    clients.push(...subscribers.map((s) => s.client));

    // A steady stream with message ids (a redelivery keeps its offset), one confirm at a time;
    // however the test ends, it stops before afterAll closes the producer.
    const stream = confirmedStream(producer.channel, ROUTES, 'feed');
    stopStream = () => stream.stop().catch(() => undefined);
    await waitFor(() => subscribers.every((s) => s.seen.length >= 50), 20000, 'the stream to reach every client');

    const killedAt = Date.now();
    const connectsBefore = connects().length;
    await rabbit.kill(leader);
    const survivor = rabbit.nodes.find((node) => node !== leader)!;
    const reconnectedAfter = await waitFor(() => connects().length > connectsBefore, 30000, 'the publisher to reconnect to another node', 50).catch((error: Error) => {
      throw new Error(`${error.message}:\n${publisher.tail(30)}`);
    });
    expect(connects().at(-1)?.node).not.toBe(connects()[connectsBefore - 1]?.node);
    const electedAfter = await waitFor(async () => {
      const now = await queueLeader(survivor).catch(() => undefined);
      return now !== undefined && now !== leader.name;
    }, 30000, 'a new quorum queue leader', 200);
    // Messages sent once the fault is over must arrive: the services follow without a restart.
    const last = await finishStream(stream, subscribers);

    let stall = 0;
    for (const s of subscribers) {
      const seqs = s.seen.map((m) => m.seq);
      const duplicates = seqs.length - new Set(seqs).size;
      const missing = Array.from({ length: last + 1 }, (_, seq) => seq).filter((seq) => !seqs.includes(seq));
      console.log(`rabbitmq cluster, client: ${last + 1} sent, ${new Set(seqs).size} delivered, ${duplicates} duplicates, ${missing.length} lost, gaps ${s.gaps.length}, ${JSON.stringify(s.client.stats)}`);
      expect(duplicates, seqs.join(',')).toBe(0);
      expect(missing).toEqual([]);
      expect(s.gaps).toEqual([]);
      stall = Math.max(stall, longestStall(s, killedAt));
    }
    console.log(
      `rabbitmq cluster: node ${leader.name} SIGKILLed; publisher reconnected after ${reconnectedAfter} ms, new queue leader seen after ${electedAfter} ms more; delivery stalled at most ${stall} ms; ${stream.sent} messages sent`,
    );
    expect(stall).toBeGreaterThan(0);
  }, 180_000);
});
