import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import {
  LocalCluster,
  Receiver,
  SequencePublisher,
  connectClient,
  killAll,
  lossReport,
  openChannels,
  opsFetch,
  waitFor,
  type ManagedProcess,
} from '@socketbridge/devkit';

const channels = Array.from({ length: 20 }, (_, i) => `flow-${i}`);
// Production hand-over timers: the lossless claims below are about the defaults users run.
const env = { ...openChannels, SOCKETBRIDGE_REMAP_SWITCH_DELAY_MS: '1000', SOCKETBRIDGE_REMAP_GRACE_MS: '2000' };
const sockets: AGClientSocket[] = [];
let cluster: LocalCluster | undefined;

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  await cluster?.stop();
  cluster = undefined;
});
afterAll(killAll);

async function flowing(c: LocalCluster) {
  const [w1, w2] = c.workers;
  const receiverSocket = await connectClient(w2!.port);
  const publisherSocket = await connectClient(w1!.port);
  sockets.push(receiverSocket, publisherSocket);
  const receiver = new Receiver(receiverSocket, channels);
  await receiver.ready();
  // 20 channels × 50 rounds/s at most, bounded to 60 s of rounds.
  const publisher = new SequencePublisher(publisherSocket, channels, 20, 3000).start();
  await waitFor(() => receiver.total() >= 200, 10000, 'messages to flow');
  return { receiver, publisher };
}

async function brokerMessages(broker: ManagedProcess): Promise<number> {
  const text = await (await opsFetch(`http://127.0.0.1:${broker.port}/metrics`)).text();
  return Number(/socketbridge_broker_messages_total\{[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
}

describe('broker set changes while messages flow', () => {
  it('scale-out: a third broker joins; every channel keeps delivering and nothing is lost', async () => {
    cluster = await LocalCluster.start({ brokers: 2, workers: 2, env });
    const { receiver, publisher } = await flowing(cluster);
    const third = await cluster.addBroker();
    await cluster.waitForMembers();
    // Past the hand-over, the new shard carries its share, and every channel still gets messages.
    await waitFor(async () => (await brokerMessages(third)) > 0, 10000, 'the new broker to carry traffic');
    const roundAfterJoin = publisher.rounds;
    await waitFor(
      () => channels.every((c) => [...(receiver.seen.get(c)?.keys() ?? [])].some((seq) => seq > roundAfterJoin)),
      10000,
      'every channel to deliver after the join',
    );
    await publisher.stop();
    await waitFor(() => lossReport(publisher, receiver).lost === 0, 5000, 'stragglers').catch(() => undefined);
    const report = lossReport(publisher, receiver);
    console.log(`scale-out: sent ${report.sent}, received ${report.received}, lost ${report.lost}, duplicates ${report.duplicates}`);
    expect(report.lost).toBe(0);
    expect(report.duplicates).toBe(0);
  });

  it('planned exit: SIGTERM drains a broker with zero messages lost', async () => {
    cluster = await LocalCluster.start({ brokers: 3, workers: 2, env });
    const { receiver, publisher } = await flowing(cluster);
    const leaving = cluster.brokers[0]!;
    const before = await brokerMessages(leaving);
    expect(before).toBeGreaterThan(0);
    const exit = await leaving.stop('SIGTERM', 40000);
    expect(exit.code).toBe(0);
    const drain = await leaving.waitForLog((l) => l.msg === 'drain finished', 1000, 'the drain report');
    expect(drain.timedOut).toBe(false);
    await cluster.waitForMembers();
    const roundAfterExit = publisher.rounds;
    await waitFor(() => Math.min(...channels.map((c) => Math.max(...(receiver.seen.get(c)?.keys() ?? [0])))) > roundAfterExit + 20, 10000, 'delivery after the exit');
    await publisher.stop();
    await waitFor(() => lossReport(publisher, receiver).lost === 0, 5000, 'stragglers').catch(() => undefined);
    const report = lossReport(publisher, receiver);
    console.log(`planned exit (drained in ${String(drain.waitedMs)} ms): sent ${report.sent}, lost ${report.lost}, duplicates ${report.duplicates}`);
    expect(report.lost).toBe(0);
    expect(report.duplicates).toBe(0);
  });

  it('SIGKILL: channels remap to the survivors and delivery resumes within 5 s', async () => {
    cluster = await LocalCluster.start({ brokers: 3, workers: 2, env });
    const { receiver, publisher } = await flowing(cluster);
    const killedAt = Date.now();
    await cluster.brokers[0]!.stop('SIGKILL');
    await cluster.waitForMembers();
    // Resumed = every channel received a message whose round started after the kill.
    const firstRoundAfterKill = publisher.roundStartedAt.findIndex((t) => t > killedAt);
    let resumedAt = 0;
    await waitFor(
      () => {
        const perChannel = channels.map((c) => {
          const arrivals = [...(receiver.firstArrival.get(c) ?? new Map<number, number>())].filter(([seq]) => seq >= firstRoundAfterKill);
          return arrivals.length ? Math.min(...arrivals.map(([, at]) => at)) : undefined;
        });
        if (perChannel.some((t) => t === undefined)) return false;
        resumedAt = Math.max(...(perChannel as number[]));
        return true;
      },
      10000,
      'delivery on every channel after the kill',
    );
    await publisher.stop();
    const report = lossReport(publisher, receiver);
    const resumeMs = resumedAt - killedAt;
    console.log(`SIGKILL: delivery resumed on all channels after ${resumeMs} ms; lost ${report.lost} of ${report.sent} (messages the dead broker held)`);
    expect(resumeMs).toBeLessThan(5000);
    expect(report.duplicates).toBe(0);
  });
});
