import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registryKeys } from '@socketbridge/common';
import { AmqpProducer, LocalCluster, PublisherApi, RedisClusterSet, devSecrets, killAll, rabbitNames, recordingSubscriber, waitFor } from '@socketbridge/devkit';
import { SocketBridgeClient } from '../src/index.js';

/**
 * Redis Cluster, as docs/scaling.md describes it: three primaries with a replica each, all of this
 * test's own on free ports (devkit's RedisClusterSet). The publisher and worker know only the
 * redis+cluster:// seed list. Channels are picked so their keys land on different primaries; then
 * one primary is SIGKILLed and its replica promoted, and delivery on its channel resumes.
 */
const names = rabbitNames('rcluster');
let redis: RedisClusterSet;
let cluster: LocalCluster;
let producer: AmqpProducer;
let api: PublisherApi;
const clients: Array<Pick<SocketBridgeClient, 'close'>> = [];
const restQueue = `${names.SOCKETBRIDGE_EXCHANGE}.rest`;

beforeAll(async () => {
  redis = await RedisClusterSet.start();
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    publishers: 1,
    env: {
      ...names,
      SOCKETBRIDGE_REDIS_URL: redis.url(),
      SOCKETBRIDGE_PUBLIC_CHANNELS: `${names.SOCKETBRIDGE_EXCHANGE}.*`,
      // Far beyond the test: a bridge can then reach the publisher only through the changes announcement (pub/sub).
      SOCKETBRIDGE_REGISTRY_RESYNC_MS: '600000',
    },
  });
  producer = await AmqpProducer.connect();
  api = new PublisherApi(`http://127.0.0.1:${cluster.publishers[0]!.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await api?.request('DELETE', `/v1/bridges/${names.SOCKETBRIDGE_EXCHANGE}-rest`).catch(() => undefined);
  await producer?.channel.deleteQueue(restQueue).catch(() => undefined);
  await producer?.deleteTopology(names);
  await producer?.close();
  await cluster?.stop();
  await redis?.stop();
  await killAll();
});

async function subscriber(channel: string, since?: string) {
  const recording = await recordingSubscriber(cluster.workers[0]!.port, channel, since);
  clients.push(recording.client);
  return recording;
}

describe('Redis Cluster', () => {
  it('channels on every primary, recovery, sign-up and a REST bridge; then a primary SIGKILL and its replica promoted', async () => {
    // One channel per primary: the hash tag {<channel>} puts a channel's history keys in one slot.
    const byPrimary = new Map<number, string>();
    for (let i = 0; i < 200 && byPrimary.size < 3; i++) {
      const channel = `${names.SOCKETBRIDGE_EXCHANGE}.c${i}`;
      const port = await redis.primaryOf(registryKeys.history(channel));
      if (!byPrimary.has(port)) byPrimary.set(port, channel);
    }
    expect(byPrimary.size).toBe(3);
    const channels = [...byPrimary.values()];

    const subs = await Promise.all(channels.map((channel) => subscriber(channel)));
    // Odd ones carry no messageId: their append also records the id kept for a redelivery, one more
    // key in the script's KEYS, in the channel's slot.
    for (let seq = 0; seq < 20; seq++) {
      for (const channel of channels) {
        producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json', ...(seq % 2 ? {} : { messageId: `${channel}:${seq}` }) });
      }
    }
    await producer.channel.waitForConfirms();
    await waitFor(() => subs.every((s) => s.seen.length === 20), 20000, 'every channel to deliver 20 messages');
    for (const s of subs) expect(s.seen.map((m) => m.seq), cluster.publishers[0]!.tail(20)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // The history keys sit on three different primaries, each holding its channel's stream.
    for (const [port, channel] of byPrimary) {
      expect(await redis.probe(port).xlen(registryKeys.history(channel))).toBe(20);
      expect(await redis.probe(port).keys(registryKeys.redeliveryId(channel, '*'))).toHaveLength(10);
    }

    // Recovery through the worker: a client with an old offset gets the rest from the channel's primary.
    for (const [i, channel] of channels.entries()) {
      const late = await subscriber(channel, subs[i]!.seen[4]!.offset);
      await waitFor(() => late.seen.length >= 15, 20000, `recovery on ${channel}`);
      expect(late.seen.map((m) => m.seq)).toEqual(Array.from({ length: 15 }, (_, k) => k + 5));
      expect(late.client.stats.recovered).toBe(15);
    }

    // Sign-up: the accounts Lua script's three keys share {accounts}.
    const account = await api.createClient('Cluster Client');
    expect(account.clientId).toEqual(expect.any(String));
    expect((await api.request('POST', '/v1/tokens', { email: account.email, password: account.password })).status).toBe(200);

    // A bridge PUT through REST: the Lua write and its PUBLISH on the changes channel reach the
    // publisher's BridgeWatcher (subscribed through the Cluster client), which starts consuming it.
    // The queue exists first, as the operator or `npm run bridge` would declare it: the publisher only consumes.
    await producer.channel.assertQueue(restQueue, { durable: false });
    await producer.channel.bindQueue(restQueue, names.SOCKETBRIDGE_EXCHANGE, 'rest.#');
    const bridgeName = `${names.SOCKETBRIDGE_EXCHANGE}-rest`;
    const put = await api.request('PUT', `/v1/bridges/${bridgeName}`, {
      queues: [{ name: restQueue, durable: false, bindings: [{ exchange: names.SOCKETBRIDGE_EXCHANGE, type: 'topic', routingKey: 'rest.#' }], route: { channel: `${names.SOCKETBRIDGE_EXCHANGE}.rest` } }],
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const listedAfter = await waitFor(
      async () => ((await api.request<{ queues: string[] }>('GET', '/v1/create-rabbit-ch')).body.queues ?? []).includes(restQueue),
      15000,
      'the REST bridge to reach the consumer list',
      100,
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify((await api.request('GET', '/v1/create-rabbit-ch')).body)} ${JSON.stringify((await api.request('GET', '/v1/bridges')).body)}`);
    });
    console.log(`redis cluster: REST bridge in the publisher's consumer list after ${listedAfter} ms`);

    // Failover: SIGKILL the primary of one channel while a stream flows on it.
    const [victimPort, victimChannel] = [...byPrimary.entries()][0]!;
    const live = await subscriber(victimChannel);
    let sent = 0;
    let stop = false;
    const MAX_ROUNDS = 3000; // bounds the loop: 3000 × 20 ms is far longer than any wait below
    const stream = (async () => {
      for (let seq = 100; seq < 100 + MAX_ROUNDS && !stop; seq++) {
        producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, victimChannel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json', messageId: `f:${seq}` });
        await producer.channel.waitForConfirms();
        sent = seq + 1;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await waitFor(() => live.seen.length >= 50, 20000, 'the stream to reach the client');
    const killedAt = Date.now();
    const { port: killedPort, promotedAfterMs: promotedAfter } = await redis.killPrimary(registryKeys.history(victimChannel));
    expect(killedPort).toBe(victimPort);
    const sentAtPromotion = sent;
    await waitFor(() => sent >= sentAtPromotion + 100, 20000, '100 more messages to be sent');
    stop = true;
    await stream;
    const last = sent - 1;
    await waitFor(() => live.seen.some((m) => m.seq === last), 30000, 'the last message to reach the client', 50).catch((error: Error) => {
      throw new Error(`${error.message}: ${live.seen.length} seen, last ${live.seen.at(-1)?.seq}, ${JSON.stringify(live.client.stats)}`);
    });
    const seqs = live.seen.map((m) => m.seq);
    expect(new Set(seqs).size, seqs.join(',')).toBe(seqs.length);
    // In order through the failover: a failed append is tried again in place (pipeline.ts).
    expect(seqs.filter((seq, i) => i > 0 && seq < seqs[i - 1]!), seqs.join(',')).toEqual([]);
    for (let seq = sentAtPromotion; seq <= last; seq++) expect(seqs).toContain(seq);
    const first = seqs[0]!;
    const missing = Array.from({ length: last - first + 1 }, (_, k) => k + first).filter((seq) => !seqs.includes(seq));
    // Asynchronous replication may lose the primary's last writes: then a gap is announced, never a silent skip.
    if (missing.length > 0) expect(live.gaps, `missing ${missing.join(',')} without a gap`).toContain(victimChannel);
    // The longest silence from the last arrival before the kill on: a message appended just before
    // the kill may still arrive after it, so the gap straddling the kill alone would miss the stall.
    const from = live.seen.findLastIndex((m) => m.at < killedAt);
    let stall = 0;
    for (let i = Math.max(from, 0) + 1; i < live.seen.length; i++) stall = Math.max(stall, live.seen[i]!.at - live.seen[i - 1]!.at);
    expect(stall).toBeGreaterThan(0);
    console.log(`redis cluster failover: primary killed, replica promoted after ${promotedAfter} ms; delivery stalled ${stall} ms; ${seqs.length}/${last - first + 1} delivered, missing ${missing.length}, gaps ${live.gaps.length}, ${JSON.stringify(live.client.stats)}`);
  });
});
