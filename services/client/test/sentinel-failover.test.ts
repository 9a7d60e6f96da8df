import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '@socketbridge/common';
import {
  AmqpProducer,
  LocalCluster,
  RedisSentinelSet,
  confirmedStream,
  finishStream,
  killAll,
  longestStall,
  rabbitNames,
  recordingSubscribers,
  startService,
  waitFor,
} from '@socketbridge/devkit';
import { SocketBridgeClient } from '../src/index.js';

/**
 * Redis behind Sentinel, as docs/scaling.md describes it: one master, one replica, three sentinels,
 * all of this test's own on free ports (devkit's RedisSentinelSet). The master is SIGKILLed mid-stream;
 * Sentinel promotes the replica and the publisher and worker, configured only with the
 * redis+sentinel:// URL, follow. With auth everywhere, as Bitnami's chart sets Sentinel up: the
 * servers require a password, and the sentinels one of their own (the URL's sentinelPassword).
 */
const PASSWORD = 'master pw&1';
const SENTINEL_PASSWORD = 'sentinel pw+2';
const names = rabbitNames('sentinel');
let redis: RedisSentinelSet;
let cluster: LocalCluster;
let producer: AmqpProducer;
const clients: Array<Pick<SocketBridgeClient, 'close'>> = [];

beforeAll(async () => {
  redis = await RedisSentinelSet.start({ masterName: 'sbtest', password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD });
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    publishers: 1,
    env: { ...names, SOCKETBRIDGE_REDIS_URL: redis.url(), SOCKETBRIDGE_PUBLIC_CHANNELS: `${names.SOCKETBRIDGE_EXCHANGE}.*` },
  });
  producer = await AmqpProducer.connect();
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await producer?.deleteTopology(names);
  await producer?.close();
  await cluster?.stop();
  await redis?.stop();
  await killAll();
});

describe('Redis behind Sentinel', () => {
  it("sentinels that require a password: a service without the URL's sentinelPassword stays unready, and no log shows a password", async () => {
    expect(redis.url()).toContain('?sentinelPassword=');
    const withoutSentinelPassword = redis.url().replace(/\?.*$/, '');
    const publisher = await startService('publisher', { ...cluster.memberEnv(), ...names, SOCKETBRIDGE_REDIS_URL: withoutSentinelPassword, SOCKETBRIDGE_PORT: '0' }, { label: 'publisher-no-sentinel-password', until: '/healthz' });
    try {
      let last = '';
      await waitFor(async () => {
        const response = await fetch(`http://127.0.0.1:${publisher.port}/readyz`);
        last = `${response.status} ${await response.text()}`;
        return /^503 .*redis unavailable/.test(last);
      }, 15000, "the publisher's /readyz to name Redis").catch((error: Error) => {
        throw new Error(`${error.message}; last answer ${last}`);
      });
      // The cluster's own members hold the sentinels' password; none of them, nor this one, logs it.
      for (const service of [publisher, ...cluster.publishers, ...cluster.workers]) {
        const logs = service.raw.join('\n');
        for (const secret of [PASSWORD, SENTINEL_PASSWORD, encodeURIComponent(PASSWORD), encodeURIComponent(SENTINEL_PASSWORD)]) expect(logs, service.name).not.toContain(secret);
      }
    } finally {
      await publisher.stop('SIGKILL', 5000);
    }
  });

  it('a master SIGKILL: Sentinel promotes the replica, publisher and worker follow, messages after it are delivered', async () => {
    const channel = `${names.SOCKETBRIDGE_EXCHANGE}.feed`;
    const subscribers = await recordingSubscribers(cluster.workers[0]!.port, channel, 3);
    clients.push(...subscribers.map((s) => s.client));

    // A steady stream through RabbitMQ with message ids, so a redelivery after the failover keeps its offset.
    const stream = confirmedStream(producer.channel, names.SOCKETBRIDGE_EXCHANGE, channel);
    await waitFor(() => subscribers.every((s) => s.seen.length >= 50), 20000, 'the stream to reach every client');

    const killedAt = Date.now();
    const promotedAfter = await redis.killPrimary();
    const sentAtPromotion = stream.sent;
    // Messages sent once the replica is the master must arrive: the services follow without a restart.
    const last = await finishStream(stream, subscribers);

    let stall = 0;
    for (const s of subscribers) {
      const seqs = s.seen.map((m) => m.seq);
      // Each once across the failover, and in RabbitMQ's order: while no master answers the publisher
      // tries a failed append again in place, the channel's later messages waiting behind it
      // (requeued instead, RabbitMQ would redeliver them among newer ones: 68 of 257 arrived after
      // a higher seq here before).
      expect(new Set(seqs).size, seqs.join(',')).toBe(seqs.length);
      const reordered = seqs.filter((seq, i) => i > 0 && seq < seqs[i - 1]!).length;
      expect(reordered, seqs.join(',')).toBe(0);
      for (let seq = sentAtPromotion; seq <= last; seq++) expect(seqs).toContain(seq);
      // Asynchronous replication may lose the master's last writes (docs/scaling.md): a message
      // missing from a recovering client must then have been announced as a gap, never skipped silently.
      const missing = Array.from({ length: last + 1 }, (_, seq) => seq).filter((seq) => !seqs.includes(seq));
      if (missing.length > 0) expect(s.gaps, `missing ${missing.join(',')} without a gap`).toContain(channel);
      stall = Math.max(stall, longestStall(s, killedAt));
      console.log(`sentinel failover, client: ${seqs.length}/${last + 1} delivered, missing ${missing.length}, gaps ${s.gaps.length}, arriving before a lower seq ${reordered}, ${JSON.stringify(s.client.stats)}`);
    }

    // The worker follows too: a client arriving now with an offset from before the kill is served
    // the rest from the promoted replica's copy of the history, through the worker's recover.
    const since = subscribers[0]!.seen[10]!;
    const late = new SocketBridgeClient({ port: cluster.workers[0]!.port });
    clients.push(late);
    await late.connected();
    const caughtUp: number[] = [];
    await late.subscribe(channel, { since: since.offset, onMessage: (envelope: Envelope) => caughtUp.push((envelope.data as { seq: number }).seq) });
    const expected = subscribers[0]!.seen.slice(11).map((m) => m.seq);
    await waitFor(() => caughtUp.length >= expected.length, 20000, 'the late client to recover from the new master', 50);
    expect(caughtUp).toEqual(expected);
    expect(late.stats.recovered).toBe(expected.length);
    console.log(`sentinel failover: master killed, replica promoted after ${promotedAfter} ms; delivery stalled at most ${stall} ms; ${stream.sent} messages sent`);
    expect(stall).toBeGreaterThan(0);
  });
});
