// A worker's and a publisher's /readyz, as Kubernetes (and devkit) reads them: the moment both
// answer 200 on a fresh cluster, a plain socketcluster-client (no recovery: what arrives, arrived
// live) subscribes on the worker to channels on every shard and each gets the message published
// on it. Before, a worker was ready once it knew one broker, and its first clients could subscribe
// before its subscriptions on the brokers were in place.
import { afterEach, afterAll, describe, expect, it } from 'vitest';
import SkeletonRendezvousHasher from 'skeleton-rendezvous';
import type { AGClientSocket } from 'socketcluster-client';
import { withTimeout } from '@socketbridge/common';
import { LocalCluster, PublisherApi, connectClient, devSecrets, killAll, openChannels, startService, waitFor, type ManagedProcess } from '@socketbridge/devkit';

const sockets: AGClientSocket[] = [];
let cluster: LocalCluster | undefined;

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await cluster?.stop();
  cluster = undefined;
});
afterAll(killAll);

/** Three channels on each broker's shard, as every member hashes them over the sorted broker URIs. */
function channelsOnEveryShard(brokers: ManagedProcess[], run: string): string[] {
  const mapper = new SkeletonRendezvousHasher();
  mapper.setSites(brokers.map((b) => `ws://127.0.0.1:${b.port}`).sort());
  const perShard = new Map<string, string[]>();
  for (let i = 0; i < 200 && [...perShard.values()].filter((c) => c.length >= 3).length < brokers.length; i++) {
    const channel = `ready-${run}-${i}`;
    const list = perShard.get(mapper.findSite(channel)) ?? [];
    if (list.length < 3) perShard.set(mapper.findSite(channel), [...list, channel]);
  }
  expect(perShard.size).toBe(brokers.length);
  return [...perShard.values()].flat();
}

/** Subscribes a plain client to every channel, then publishes one message on each through the publisher's REST API. */
async function subscribeAndPublish(worker: ManagedProcess, publisher: ManagedProcess, channels: string[]): Promise<Map<string, unknown[]>> {
  const socket = await connectClient(worker.port, { autoReconnect: false });
  sockets.push(socket);
  const received = new Map<string, unknown[]>(channels.map((c) => [c, []]));
  await Promise.all(
    channels.map(async (name) => {
      const channel = socket.subscribe(name);
      void (async () => {
        for await (const data of channel) received.get(name)!.push(data);
      })();
      await withTimeout(channel.listener('subscribe').once(), 10000, `the subscription to ${name}`);
    }),
  );
  const api = new PublisherApi(`http://127.0.0.1:${publisher.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
  for (const channel of channels) {
    const { status, body } = await api.request('POST', '/v1/publish', { channel, data: { on: channel } });
    expect(status, JSON.stringify(body)).toBe(202);
  }
  return received;
}

async function timed<T>(start: () => Promise<T>): Promise<[T, number]> {
  const t0 = Date.now();
  const result = await start();
  return [result, Date.now() - t0];
}

describe('readiness: ready means the first clients receive live', () => {
  it('3 brokers up, then a worker and a publisher: the moment both are ready, every shard delivers live', async () => {
    cluster = new LocalCluster({ env: { ...openChannels, SOCKETBRIDGE_CONSUME_ON_START: 'false' } });
    await cluster.startState();
    for (let i = 0; i < 3; i++) await cluster.addBroker();
    const [worker, workerMs] = await timed(() => cluster!.addWorker());
    const [publisher, publisherMs] = await timed(() => cluster!.addPublisher());
    const channels = channelsOnEveryShard(cluster.brokers, 'up');
    const received = await subscribeAndPublish(worker, publisher, channels);
    await waitFor(() => [...received.values()].every((list) => list.length >= 1), 5000, 'every message to arrive live').catch(() => undefined);
    console.log(`start to ready: worker ${workerMs} ms, publisher ${publisherMs} ms`);
    const missed = channels.filter((c) => received.get(c)!.length !== 1);
    expect(missed, `missed live: ${missed.join(', ')}`).toEqual([]);
    for (const channel of channels) expect(received.get(channel)![0]).toMatchObject({ data: { on: channel } });
  });

  it('brokers join after the worker: a publisher that starts before the state server pushed them maps as the worker does', async () => {
    // The state server's default scale-out delay: the push of the new brokers waits 5 s, as in production.
    cluster = new LocalCluster({ env: { ...openChannels, SOCKETBRIDGE_CONSUME_ON_START: 'false', SCC_STATE_SERVER_SCALE_OUT_DELAY: '5000' } });
    await cluster.startState();
    await cluster.addBroker();
    const worker = await cluster.addWorker();
    await cluster.addBroker();
    await cluster.addBroker();
    await waitFor(async () => (await cluster!.stateView()).sccBrokerURIs.length === 3, 10000, 'the brokers to join the state server');
    const publisher = await cluster.addPublisher();
    // Before, the publisher's join answer named all 3 brokers while the worker still mapped onto 1
    // until the push: what the publisher sent to the 2 others, the worker did not hear.
    const channels = channelsOnEveryShard(cluster.brokers, 'joining');
    const received = await subscribeAndPublish(worker, publisher, channels);
    await waitFor(() => [...received.values()].every((list) => list.length >= 1), 3000, 'every message to arrive live').catch(() => undefined);
    const missed = channels.filter((c) => received.get(c)!.length !== 1);
    expect(missed, `missed live: ${missed.join(', ')}`).toEqual([]);
  });

  it('/readyz says what a worker waits for while a broker of its mapping does not answer, and turns 200 once it does', async () => {
    cluster = new LocalCluster({ env: openChannels });
    await cluster.startState();
    await cluster.addBroker();
    const stuck = await cluster.addBroker();
    await waitFor(async () => (await cluster!.stateView()).sccBrokerURIs.length === 2, 10000, 'both brokers to join');
    // Stopped, not gone: the state server still lists it, and a connection to it never completes.
    stuck.child.kill('SIGSTOP');
    const worker = await startService('worker', { ...cluster.memberEnv(), SOCKETCLUSTER_PORT: '0' }, { until: '/healthz' });
    cluster.workers.push(worker);
    const readyz = async () => {
      const response = await fetch(`http://127.0.0.1:${worker.port}/readyz`);
      return { status: response.status, body: (await response.json()) as { reason?: string } };
    };
    await waitFor(async () => (await readyz()).body.reason === 'joining brokers: 1 of 2 connected', 10000, 'the worker to wait for the stopped broker');
    expect((await readyz()).status).toBe(503);
    stuck.child.kill('SIGCONT');
    await waitFor(async () => (await readyz()).status === 200, 10000, 'the worker to be ready once the broker answers');
  });
});
