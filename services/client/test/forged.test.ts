import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import type { Envelope } from '@socketbridge/common';
import { connectClient, devSecrets, startPublisherTestbed, waitFor, type PublisherTestbed } from '@socketbridge/devkit';
import { SocketBridgeClient } from '../src/index.js';

// Someone inside the cluster (holding SCC_AUTH_KEY) publishes forged envelopes on a client's
// channel through a broker. The client library must not take them at their word: an offset in
// the future is refused at once, one that does not chain is refused once history did not confirm
// it, and the real messages keep arriving once each, in order.
let testbed: PublisherTestbed;
let client: SocketBridgeClient | undefined;
let insider: AGClientSocket | undefined;

beforeAll(async () => {
  testbed = await startPublisherTestbed('forged');
});
afterAll(async () => {
  client?.close();
  insider?.disconnect();
  await testbed.teardown();
});

describe('the client library and forged envelopes', () => {
  it('refuses a future offset and an unconfirmed jump, and delivers the real chain', async () => {
    const { cluster, api } = testbed;
    const alice = await api.createClient('Alice');
    client = new SocketBridgeClient({ port: cluster.workers[0]!.port, token: alice.token });
    await client.connected();
    const received: Envelope[] = [];
    await client.subscribe(alice.channel, { onMessage: (envelope) => received.push(envelope) });

    const publish = async (n: number) => expect((await api.request('POST', '/v1/publish', { channel: alice.channel, data: { n } })).status).toBe(202);
    await publish(1);
    await waitFor(() => received.length === 1, 10000, 'the first real message');

    insider = await connectClient(cluster.brokers[0]!.port, { query: { authKey: devSecrets.SCC_AUTH_KEY! } });
    const last = received[0]!.offset;
    const [ms = '0'] = last.split('-');
    const forged: Envelope[] = [
      // Would make every later real message look like a duplicate.
      { id: 'forged-future', offset: '9999999999999-0', prev: last, ts: Date.now(), data: { n: 'forged' } },
      // A plausible offset that does not chain: held, then refused since history does not hold it.
      { id: 'forged-jump', offset: `${ms}-999999`, prev: `${ms}-999998`, ts: Date.now(), data: { n: 'forged' } },
    ];
    await insider.invokePublish(alice.channel, { sender: 'insider', messages: forged });
    await waitFor(() => client!.stats.refused === 2, 10000, 'both forgeries to be refused');

    for (const n of [2, 3, 4]) await publish(n);
    await waitFor(() => received.length >= 4, 10000, 'the real messages');
    expect(received.map((e) => (e.data as { n: unknown }).n)).toEqual([1, 2, 3, 4]);
    expect(received.some((e) => e.id.startsWith('forged'))).toBe(false);
    for (let i = 1; i < received.length; i++) expect(received[i]!.prev).toBe(received[i - 1]!.offset);
    expect(client.stats).toMatchObject({ delivered: 4, refused: 2, gaps: 0 });
  }, 60_000);
});
