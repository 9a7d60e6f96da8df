import { connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registryKeys } from '@socketbridge/common';
import {
  AmqpProducer,
  LocalCluster,
  RedisClusterSet,
  RedisSentinelSet,
  TestCa,
  killAll,
  rabbitNames,
  recordingSubscriber,
  startService,
  waitFor,
  type ManagedProcess,
} from '@socketbridge/devkit';
import type { SocketBridgeClient } from '../src/index.js';

/**
 * Redis over TLS (docs/configuration.md#tls): a Sentinel set and a Redis Cluster of this file's own
 * (devkit's RedisSentinelSet and RedisClusterSet with a TestCa: every server, sentinel and node on
 * a TLS port only, replication, Sentinel's links and the cluster bus over TLS too). Publisher and
 * worker know only the rediss+sentinel:// or rediss+cluster:// URL and trust the throw-away CA
 * through NODE_EXTRA_CA_CERTS, as a deployment trusts a private CA. One topology at a time: each
 * describe starts its own and stops it before the next.
 */
let ca: TestCa;
/** A CA that signed nothing here: a service trusting only it must refuse the servers. */
let strangerCa: TestCa;

beforeAll(() => {
  ca = TestCa.create();
  strangerCa = TestCa.create({ name: 'a CA that signed nothing here' });
});

afterAll(async () => {
  await killAll();
  ca?.remove();
  strangerCa?.remove();
});

/** What a plain TCP client sending PING reads from `port` before the server closes (at most `ms`). */
async function plainPing(port: number, ms = 5000): Promise<string> {
  return new Promise((resolve) => {
    let read = '';
    const socket = connectTcp({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(read);
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (chunk: Buffer) => (read += chunk.toString('latin1')));
    socket.once('close', done);
    socket.once('error', done);
  });
}

/** The same over TLS with the test CA: the control that shows the port answers a client that speaks TLS. */
async function tlsPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let read = '';
    const socket = connectTls({ host: '127.0.0.1', port, ca: ca.ca }, () => socket.write('PING\r\n'));
    socket.setTimeout(5000, () => socket.destroy(new Error(`no answer from ${port} within 5 s`)));
    socket.on('data', (chunk: Buffer) => {
      read += chunk.toString('latin1');
      if (read.includes('\r\n')) {
        socket.destroy();
        resolve(read);
      }
    });
    socket.once('error', reject);
  });
}

interface Suite {
  redis: { url(): string; stop(): Promise<void> };
  cluster: LocalCluster;
  names: ReturnType<typeof rabbitNames>;
  producer: AmqpProducer;
}

/**
 * The tests every TLS topology passes. `start` brings the topology up; `tlsPorts` are the ports a
 * client reaches first (a sentinel, a server or a node); `more` adds the topology's own tests.
 */
function tlsSuite(kind: string, start: () => Promise<Suite['redis']>, tlsPorts: (redis: Suite['redis']) => number[], more?: (suite: () => Suite, clients: Array<Pick<SocketBridgeClient, 'close'>>) => void) {
  describe(`Redis ${kind} over TLS`, () => {
    const names = rabbitNames(`tls-${kind.toLowerCase()}`);
    let redis: Suite['redis'];
    let cluster: LocalCluster;
    let producer: AmqpProducer;
    const clients: Array<Pick<SocketBridgeClient, 'close'>> = [];

    beforeAll(async () => {
      redis = await start();
      cluster = await LocalCluster.start({
        brokers: 1,
        workers: 1,
        publishers: 1,
        env: { ...names, SOCKETBRIDGE_REDIS_URL: redis.url(), NODE_EXTRA_CA_CERTS: ca.caFile, SOCKETBRIDGE_PUBLIC_CHANNELS: `${names.SOCKETBRIDGE_EXCHANGE}.*` },
      });
      producer = await AmqpProducer.connect();
    }, 120_000);

    afterAll(async () => {
      for (const client of clients) client.close();
      await producer?.deleteTopology(names);
      await producer?.close();
      await cluster?.stop();
      await redis?.stop();
    });

    it('delivers through TLS: the publisher appends to history, a late client recovers from it through the worker', async () => {
      expect(redis.url()).toMatch(/^rediss\+/);
      const channel = `${names.SOCKETBRIDGE_EXCHANGE}.feed`;
      const live = await recordingSubscriber(cluster.workers[0]!.port, channel);
      clients.push(live.client);
      for (let seq = 0; seq < 20; seq++) {
        producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json', messageId: `tls:${seq}` });
      }
      await producer.channel.waitForConfirms();
      await waitFor(() => live.seen.length === 20, 20000, '20 messages through TLS Redis');
      expect(live.seen.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      // Each carries the offset of its history entry: the publisher's append went over TLS.
      expect(live.seen.every((m) => typeof m.offset === 'string')).toBe(true);

      // The worker reads the history back over TLS for a client that comes back with an old offset.
      const late = await recordingSubscriber(cluster.workers[0]!.port, channel, live.seen[4]!.offset);
      clients.push(late.client);
      await waitFor(() => late.seen.length >= 15, 20000, 'the late client to recover 15 messages');
      expect(late.seen.map((m) => m.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 5));
      expect(late.client.stats.recovered).toBe(15);
    });

    it('a service trusting a CA that did not sign the servers stays unready, /readyz naming Redis, and logs the certificate error', async () => {
      const env = { ...cluster.memberEnv(), NODE_EXTRA_CA_CERTS: strangerCa.caFile };
      // /healthz: both answer while they wait for Redis, which they must never get.
      const [publisher, worker] = await Promise.all([
        startService('publisher', { ...env, SOCKETBRIDGE_PORT: '0' }, { label: `publisher-stranger-ca-${kind}`, until: '/healthz' }),
        startService('worker', { ...env, SOCKETCLUSTER_PORT: '0' }, { label: `worker-stranger-ca-${kind}`, until: '/healthz' }),
      ]);
      try {
        for (const service of [publisher, worker]) {
          const logged = await service.waitForLog((line) => line.msg === 'redis TLS handshake failed', 20000, `${service.name} to log the handshake's error`);
          expect(logged.err).toMatch(/certificate/);
          // The worker's reason names Redis once its cluster link is up (before that it names the link).
          const body = await waitForUnready(service, /redis/i);
          expect(body).toMatch(/redis/i);
          expect(service.lines.some((line) => line.msg === 'redis is back')).toBe(false);
        }
      } finally {
        await Promise.all([publisher.stop('SIGKILL', 5000), worker.stop('SIGKILL', 5000)]);
      }
    });

    it('a plain TCP client on a TLS port gets no Redis reply; a TLS client with the CA gets PONG', async () => {
      for (const port of tlsPorts(redis)) {
        expect(await tlsPing(port)).toBe('+PONG\r\n');
        const plain = await plainPing(port);
        // Not a RESP reply of any kind (the server only tried a TLS handshake and closed).
        expect(plain).not.toMatch(/PONG|^[-+:$*]/);
      }
    });

    more?.(() => ({ redis, cluster, names, producer }), clients);
  });
}

/**
 * Kills the primary `kill` names, then publishes 10 messages on `channel`: all reach a client, so
 * publisher and worker followed the promotion over TLS (the promoted replica's certificate names its address too).
 */
async function deliveredAfterPromotion(suite: Suite, clients: Array<Pick<SocketBridgeClient, 'close'>>, channel: string, kill: () => Promise<number>): Promise<void> {
  const { cluster, names, producer } = suite;
  const live = await recordingSubscriber(cluster.workers[0]!.port, channel);
  clients.push(live.client);
  const promotedAfterMs = await kill();
  for (let seq = 0; seq < 10; seq++) {
    producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json', messageId: `${channel}:${seq}` });
  }
  await producer.channel.waitForConfirms();
  await waitFor(() => live.seen.length >= 10, 30000, '10 messages after the promotion');
  // Each exactly once and in order: until the publisher reaches the new primary a failed append is
  // tried again in place, the channel's later messages waiting behind it (pipeline.ts).
  expect(live.seen.map((m) => m.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  console.log(`${channel}: primary killed, replica promoted after ${promotedAfterMs} ms; 10 of 10 delivered after it`);
}

/** Polls `/readyz` until it answers 503 with a body matching `reason` (15 s at most); resolves to that body. */
async function waitForUnready(service: ManagedProcess, reason: RegExp): Promise<string> {
  let last = '';
  await waitFor(
    async () => {
      const response = await fetch(`http://127.0.0.1:${service.port}/readyz`);
      last = `${response.status} ${await response.text()}`;
      if (response.status === 200) throw new Error(`${service.name} turned ready: ${last}`);
      return reason.test(last);
    },
    15000,
    `${service.name}'s /readyz to name ${reason}`,
    100,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last answer ${last}`);
  });
  return last;
}

tlsSuite(
  'Sentinel',
  () => RedisSentinelSet.start({ masterName: 'sbtls', tls: ca }),
  (redis) => [(redis as RedisSentinelSet).sentinelPorts[0]!, (redis as RedisSentinelSet).masterPort],
  (suite, clients) => {
    it('the one-node form rediss:// to the master: a worker on it is listed (a write) and serves a recovery (a read)', async () => {
      const { redis, cluster, names, producer } = suite();
      const master = (redis as RedisSentinelSet).masterPort;
      const channel = `${names.SOCKETBRIDGE_EXCHANGE}.single`;
      const live = await recordingSubscriber(cluster.workers[0]!.port, channel);
      clients.push(live.client);
      for (let seq = 0; seq < 10; seq++) {
        producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json', messageId: `single:${seq}` });
      }
      await producer.channel.waitForConfirms();
      await waitFor(() => live.seen.length === 10, 20000, '10 messages through Sentinel');
      // The default /readyz: the worker is ready only once its liveness entry is written in Redis.
      const worker = await startService('worker', { ...cluster.memberEnv(), SOCKETBRIDGE_REDIS_URL: `rediss://127.0.0.1:${master}`, SOCKETCLUSTER_PORT: '0' }, { label: 'worker-rediss' });
      try {
        const late = await recordingSubscriber(worker.port, channel, live.seen[0]!.offset);
        clients.push(late.client);
        await waitFor(() => late.seen.length >= 9, 20000, 'the rediss:// worker to recover the history');
        expect(late.seen.map((m) => m.seq)).toEqual(Array.from({ length: 9 }, (_, i) => i + 1));
        expect(late.client.stats.recovered).toBe(9);
      } finally {
        await worker.stop('SIGKILL', 5000);
      }
    });

    // Last: it kills the master the tests above use.
    it('a master SIGKILL: Sentinel promotes the replica over TLS, publisher and worker follow', async () => {
      const current = suite();
      await deliveredAfterPromotion(current, clients, `${current.names.SOCKETBRIDGE_EXCHANGE}.failover`, () => (current.redis as RedisSentinelSet).killPrimary());
    });
  },
);

tlsSuite(
  'Cluster',
  () => RedisClusterSet.start({ tls: ca }),
  (redis) => (redis as RedisClusterSet).ports.slice(0, 2),
  (suite, clients) => {
    it('certificates naming only localhost: a seed given as localhost verifies, the nodes the cluster announces as 127.0.0.1 do not, and the log says so', async () => {
      const namesOnly = TestCa.create({ name: 'SocketBridge test CA, names only', altNames: 'DNS:localhost' });
      const other = await RedisClusterSet.start({ tls: namesOnly });
      try {
        const publisher = await startService(
          'publisher',
          { ...suite().cluster.memberEnv(), SOCKETBRIDGE_REDIS_URL: `rediss+cluster://localhost:${other.ports[0]}`, NODE_EXTRA_CA_CERTS: namesOnly.caFile, SOCKETBRIDGE_PORT: '0' },
          { label: 'publisher-names-only', until: '/healthz' },
        );
        // The slot map came from the seed (connected to by name); each announced node is refused by its IP.
        const logged = await publisher.waitForLog((line) => line.msg === 'redis node unavailable', 20000, 'a node refused for its address');
        expect(logged.err).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
        expect(other.ports).toContain(Number(String(logged.node).split(':')[1]));
        expect(await waitForUnready(publisher, /redis unavailable/)).toMatch(/^503/);
        await publisher.stop('SIGKILL', 5000);
      } finally {
        await other.stop();
        namesOnly.remove();
      }
    });

    it('a primary SIGKILL: the cluster promotes its replica over the TLS bus, publisher and worker follow', async () => {
      const current = suite();
      const channel = `${current.names.SOCKETBRIDGE_EXCHANGE}.failover`;
      await deliveredAfterPromotion(current, clients, channel, async () => (await (current.redis as RedisClusterSet).killPrimary(registryKeys.history(channel))).promotedAfterMs);
    });
  },
);
