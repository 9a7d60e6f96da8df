import { afterAll, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import { LocalCluster, openChannels, Receiver, SequencePublisher, connectClient, killAll, lossReport, waitFor } from '@socketbridge/devkit';

const channels = Array.from({ length: 10 }, (_, i) => `keep-${i}`);
const sockets: AGClientSocket[] = [];
let cluster: LocalCluster | undefined;

afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  await cluster?.stop();
  await killAll();
});

describe('state server restart', () => {
  it('keeps delivering on the last mapping while it is away, and every member rejoins', async () => {
    // A start-up delay longer than the members' reconnect spread (retry 300 ms + up to 1 s), so
    // brokers are back before workers may rejoin, as production's 5 s vs 2 s + 1 s.
    cluster = await LocalCluster.start({ brokers: 2, workers: 2, env: { ...openChannels, SCC_STATE_SERVER_STARTUP_DELAY: '2000' } });
    const before = await cluster.stateView();
    const [w1, w2] = cluster.workers;
    const rx = await connectClient(w2!.port);
    const tx = await connectClient(w1!.port);
    sockets.push(rx, tx);
    const receiver = new Receiver(rx, channels);
    await receiver.ready();
    const publisher = new SequencePublisher(tx, channels, 20, 3000).start();
    await waitFor(() => receiver.total() >= 100, 10000, 'messages to flow');

    const port = cluster.state.port;
    await cluster.state.stop('SIGKILL');
    // While the state server is down: a full second of messages on every channel still arrives.
    const roundAtDown = publisher.rounds;
    await waitFor(
      () => channels.every((c) => [...(receiver.seen.get(c)?.keys() ?? [])].some((seq) => seq > roundAtDown + 40)),
      10000,
      'delivery with the state server down',
    );

    await cluster.startState(port);
    const uris = await cluster.waitForMembers(20000);
    expect(uris).toEqual(before.sccBrokerURIs);
    const after = await cluster.stateView();
    expect(after.sccWorkerURIs).toEqual(before.sccWorkerURIs);

    const roundAtRejoin = publisher.rounds;
    await waitFor(() => channels.every((c) => [...(receiver.seen.get(c)?.keys() ?? [])].some((seq) => seq > roundAtRejoin + 20)), 10000, 'delivery after the rejoin');
    await publisher.stop();
    await waitFor(() => lossReport(publisher, receiver).lost === 0, 5000, 'stragglers').catch(() => undefined);
    const report = lossReport(publisher, receiver);
    console.log(`state restart: sent ${report.sent}, lost ${report.lost}, duplicates ${report.duplicates}`);
    expect(report.lost).toBe(0);
    expect(report.duplicates).toBe(0);
  });
});
