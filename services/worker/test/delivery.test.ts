import { afterAll, afterEach, describe, expect, it } from 'vitest';
import SkeletonRendezvousHasher from 'skeleton-rendezvous';
import type { AGClientSocket } from 'socketcluster-client';
import { LocalCluster, openChannels, Receiver, SequencePublisher, connectClient, getJson, killAll, opsFetch, lossReport, waitFor } from '@socketbridge/devkit';

const channels = Array.from({ length: 20 }, (_, i) => `room-${i}`);
const sockets: AGClientSocket[] = [];
let cluster: LocalCluster | undefined;

async function client(port: number): Promise<AGClientSocket> {
  const socket = await connectClient(port);
  sockets.push(socket);
  return socket;
}

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await cluster?.stop();
  cluster = undefined;
});
afterAll(killAll);

describe('delivery across the cluster', () => {
  it('a message published on one worker reaches subscribers on the other, through both brokers', async () => {
    cluster = await LocalCluster.start({ brokers: 2, workers: 2, env: openChannels });
    const brokerURIs = (await cluster.stateView()).sccBrokerURIs;
    expect(brokerURIs).toHaveLength(2);

    // Every worker hashes with skeleton-rendezvous over the sorted list; the 20 channels land on both shards.
    const mapper = new SkeletonRendezvousHasher();
    mapper.setSites(brokerURIs);
    const shardOf = new Map(channels.map((c) => [c, mapper.findSite(c)]));
    expect(new Set(shardOf.values()).size).toBe(2);

    const [w1, w2] = cluster.workers;
    const receiver = new Receiver(await client(w2!.port), channels);
    await receiver.ready();
    const publisher = new SequencePublisher(await client(w1!.port), channels, 5, 10);
    await publisher.start().done();
    await waitFor(() => lossReport(publisher, receiver).lost === 0, 10000, 'every message to arrive');
    const report = lossReport(publisher, receiver);
    expect(report).toMatchObject({ sent: 200, lost: 0, duplicates: 0 });

    // And each broker carried traffic: its own metrics say so.
    for (const broker of cluster.brokers) {
      const text = await (await opsFetch(`http://127.0.0.1:${broker.port}/metrics`)).text();
      const published = Number(/socketbridge_broker_messages_total\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
      const expected = channels.filter((c) => shardOf.get(c)!.endsWith(`:${broker.port}`)).length * 10;
      expect(published).toBe(expected);
    }
  });

  it('interoperates: our broker with upstream scc-broker, our worker with a plain scc-broker-client worker', async () => {
    cluster = new LocalCluster({ env: openChannels });
    await cluster.startState();
    await cluster.addBroker('ours');
    await cluster.addBroker('upstream');
    await cluster.addWorker('ours');
    await cluster.addWorker('upstream');
    await cluster.waitForMembers();

    const [ours, upstream] = cluster.workers;
    const onOurs = new Receiver(await client(ours!.port), channels);
    const onUpstream = new Receiver(await client(upstream!.port), channels);
    await Promise.all([onOurs.ready(), onUpstream.ready()]);
    // Publish from each kind of worker; both receivers must hold everything from both.
    const fromOurs = new SequencePublisher(await client(ours!.port), channels.slice(0, 10), 5, 10);
    const fromUpstream = new SequencePublisher(await client(upstream!.port), channels.slice(10), 5, 10);
    await Promise.all([fromOurs.start().done(), fromUpstream.start().done()]);
    for (const publisher of [fromOurs, fromUpstream]) {
      for (const receiver of [onOurs, onUpstream]) {
        await waitFor(() => lossReport(publisher, receiver).lost === 0, 10000, 'cross-kind delivery');
        expect(lossReport(publisher, receiver)).toMatchObject({ sent: 100, lost: 0, duplicates: 0 });
      }
    }
    const view = await cluster.stateView();
    expect(view.sccBrokerURIs).toHaveLength(2);
    expect(view.sccWorkerURIs).toHaveLength(2);
    const upstreamView = await getJson<{ brokerURIs: string[] }>(`http://127.0.0.1:${upstream!.port}/cluster`);
    expect(upstreamView.brokerURIs).toEqual(view.sccBrokerURIs);
  });
});
