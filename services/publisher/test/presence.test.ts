import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import { SocketBridgeClient, type PresenceNotice } from '@socketbridge/client';
import { MAX_CHANNEL_NAME_LENGTH, withTimeout } from '@socketbridge/common';
import { connectClient, startPublisherTestbed, waitFor, type ManagedProcess, type PublisherApi, type PublisherTestbed } from '@socketbridge/devkit';

// Channel info and presence (#17): the publisher asks every worker through the cluster and adds up
// their answers. Real processes: a broker, 2 workers (a third one added and SIGKILLed), a publisher.

// Shorter than the defaults (2000, 1000) so the kill case is quick, but not so short that a worker
// starved of CPU for a moment on 2 busy cores misses a renewal or a reply: with 250 / 500 a CI run
// once saw a query leave out a live worker's client.
const LIVENESS_MS = 500;
const QUERY_TIMEOUT_MS = 1000;

let testbed: PublisherTestbed;
let api: PublisherApi;
const sockets: AGClientSocket[] = [];
const libraryClients: SocketBridgeClient[] = [];

interface ChannelInfo {
  channel: string;
  subscribers: number;
  workers: Array<{ instanceId: string; subscribers: number }>;
  presence: boolean;
  complete: boolean;
  missing: string[];
}
interface Presence {
  channel: string;
  clients: string[];
  truncated: boolean;
  complete: boolean;
  missing: string[];
}

beforeAll(async () => {
  testbed = await startPublisherTestbed('presence', {
    brokers: 1,
    workers: 2,
    env: {
      SOCKETBRIDGE_LIVENESS_INTERVAL_MS: String(LIVENESS_MS),
      SOCKETBRIDGE_CLUSTER_QUERY_TIMEOUT_MS: String(QUERY_TIMEOUT_MS),
      SOCKETBRIDGE_CONSUME_ON_START: 'false',
    },
  });
  api = testbed.api;
  const put = await api.request('PUT', '/v1/bridges/presence-test', {
    queues: [{ name: `${testbed.names.SOCKETBRIDGE_QUEUE}.rooms`, route: { channel: 'room.{routingKey}' } }],
    channels: [
      { pattern: 'room.*', access: 'authenticated', presence: true },
      { pattern: 'quiet.*', access: 'authenticated' },
    ],
  });
  expect(put.status).toBe(200);
  // Every worker hears the control channel and has its liveness entry: a query waits for both and gets both.
  await waitFor(async () => {
    const info = await channelInfo('room.warm-up');
    return info.complete && info.workers.length === 2;
  }, 20000, 'both workers to answer channel info');
}, 60000);

afterEach(() => {
  for (const socket of sockets.splice(0)) socket.disconnect();
  for (const client of libraryClients.splice(0)) client.close();
});

afterAll(async () => {
  await api?.request('DELETE', '/v1/bridges/presence-test');
  await testbed?.teardown();
});

async function channelInfo(channel: string): Promise<ChannelInfo> {
  const { status, body } = await api.request<ChannelInfo>('GET', `/v1/channels/${channel}`);
  expect(status, JSON.stringify(body)).toBe(200);
  return body;
}

async function presence(channel: string, limit?: number): Promise<Presence> {
  const { status, body } = await api.request<Presence>('GET', `/v1/channels/${channel}/presence${limit ? `?limit=${limit}` : ''}`);
  expect(status, JSON.stringify(body)).toBe(200);
  return body;
}

/** A signed-in socket on a worker, subscribed to each channel (resolves once the worker acknowledged). */
async function subscribed(worker: ManagedProcess, token: string, ...channels: string[]): Promise<AGClientSocket> {
  const socket = await connectClient(worker.port, { token, autoReconnect: false });
  sockets.push(socket);
  for (const name of channels) {
    const channel = socket.subscribe(name);
    await withTimeout(channel.listener('subscribe').once(), 5000, `the subscription to ${name}`);
  }
  return socket;
}

/** What the workers hold, from the sockets the test knows it has open: the count per worker and the clients. */
function expectAgreement(info: ChannelInfo, perWorker: Map<string, number>, total: number): void {
  expect(info.subscribers).toBe(total);
  expect(info.workers.map((w) => w.subscribers).sort()).toEqual([...perWorker.values()].sort());
}

/** A client-library subscriber to each channel that records every presence notice (with when it came) and message. */
async function watcher(worker: ManagedProcess, token: string, ...channels: string[]) {
  const notices: Array<PresenceNotice & { at: number }> = [];
  const messages: unknown[] = [];
  const client = new SocketBridgeClient({ port: worker.port, token });
  libraryClients.push(client);
  await client.connected();
  for (const name of channels) {
    await client.subscribe(name, { onMessage: (envelope) => messages.push(envelope), onPresence: (notice) => notices.push({ ...notice, at: Date.now() }) });
  }
  return { client, notices, messages };
}

describe('GET /v1/channels/:channel and /presence', () => {
  it('count the sockets actually open on each worker and list the clients subscribed; subscribers hear joins and leaves from both workers', async () => {
    const [w0, w1] = testbed.cluster.workers as [ManagedProcess, ManagedProcess];
    const [eve, ada, bob] = await Promise.all([api.createClient('Eve'), api.createClient('Ada'), api.createClient('Bob')]);
    const { client: eveClient, notices, messages } = await watcher(w0, eve.token, 'room.a');
    const heard = (clientId: string, action: 'join' | 'leave') =>
      waitFor(() => notices.some((n) => n.clientId === clientId && n.action === action && n.channel === 'room.a'), 5000, `${action} of ${clientId}`);

    const adaOn1 = await subscribed(w1, ada.token, 'room.a');
    const adaOn0 = await subscribed(w0, ada.token, 'room.a', 'room.b');
    const bobOn1 = await subscribed(w1, bob.token, 'room.a');
    await heard(ada.clientId, 'join'); // from worker 1, through the cluster
    await heard(bob.clientId, 'join');

    let info = await channelInfo('room.a');
    expect(info).toMatchObject({ channel: 'room.a', presence: true, complete: true, missing: [] });
    expectAgreement(info, new Map([['w0', 2], ['w1', 2]]), 4); // Eve and Ada on 0; Ada and Bob on 1
    expect((await channelInfo('room.b')).subscribers).toBe(1);
    expect((await channelInfo('room.nobody')).subscribers).toBe(0);
    expect(await presence('room.a')).toEqual({
      channel: 'room.a',
      clients: [ada.clientId, bob.clientId, eve.clientId].sort(),
      truncated: false,
      complete: true,
      missing: [],
    });
    // Capped: two of three, and said so.
    const capped = await presence('room.a', 2);
    expect(capped.clients).toHaveLength(2);
    expect(capped.truncated).toBe(true);

    // An unsubscribe and a closed socket both leave.
    adaOn1.unsubscribe('room.a');
    bobOn1.disconnect();
    await heard(bob.clientId, 'leave');
    await waitFor(async () => (await channelInfo('room.a')).subscribers === 2, 5000, 'the count to drop to 2');
    expect((await presence('room.a')).clients).toEqual([ada.clientId, eve.clientId].sort()); // Ada is still on worker 0
    adaOn0.disconnect();
    await waitFor(() => notices.filter((n) => n.clientId === ada.clientId && n.action === 'leave').length === 2, 5000, 'both of Ada\'s leaves');
    info = await channelInfo('room.a');
    expectAgreement(info, new Map([['w0', 1], ['w1', 0]]), 1);
    expect((await presence('room.a')).clients).toEqual([eve.clientId]);
    // Notices are events of their own: no message reached the channel, and its history is untouched.
    expect(messages).toEqual([]);
    expect(eveClient.stats).toMatchObject({ delivered: 0, refused: 0, gaps: 0 });
  });

  it('agree with the open sockets again after a worker is SIGKILLed, within the liveness expiry', async () => {
    const [w0] = testbed.cluster.workers as [ManagedProcess];
    const third = await testbed.cluster.addWorker();
    try {
      const [ada, bob] = await Promise.all([api.createClient('Ada'), api.createClient('Bob')]);
      // Ada watches with the client library, on worker 0.
      const { notices } = await watcher(w0, ada.token, 'room.k');
      // The third worker answers queries, and the others have seen it live (its liveness entry).
      await waitFor(async () => (await channelInfo('room.k')).workers.length === 3, 20000, 'the third worker to answer');
      await waitFor(async () => (await channelInfo('room.k')).complete, 20000, 'its liveness entry');
      await subscribed(third, bob.token, 'room.k');
      await waitFor(() => notices.some((n) => n.clientId === bob.clientId && n.action === 'join'), 5000, "Bob's join from the third worker");
      const before = await presence('room.k');
      expect(before.clients, JSON.stringify({ before, ada: ada.clientId, bob: bob.clientId, info: await channelInfo('room.k') })).toEqual([ada.clientId, bob.clientId].sort());

      const killedAt = Date.now();
      await third.stop('SIGKILL', 5000);
      // The dead worker's sockets stop counting at once (no one answers for them); until its
      // liveness entry expires (3 × the interval), queries wait for it and name it missing.
      const counted = await waitFor(async () => {
        const [info, who] = await Promise.all([channelInfo('room.k'), presence('room.k')]);
        return info.subscribers === 1 && who.clients.join() === ada.clientId;
      }, 10000, 'the count and presence without the killed worker');
      await waitFor(async () => (await channelInfo('room.k')).complete, 10000, 'queries to stop waiting for the killed worker');
      const elapsedCounted = counted;
      const elapsedComplete = Date.now() - killedAt;
      // The dead worker could not say Bob left: worker 0 says it once the entry lapsed.
      await waitFor(() => notices.some((n) => n.clientId === bob.clientId && n.action === 'leave'), 10000, "Bob's leave after the kill");
      const elapsedLeave = notices.find((n) => n.clientId === bob.clientId && n.action === 'leave')!.at - killedAt;
      expect(notices.filter((n) => n.clientId === bob.clientId).map((n) => n.action)).toEqual(['join', 'leave']);
      console.info(`after SIGKILL: counts and presence right after ${elapsedCounted} ms, complete again after ${elapsedComplete} ms, the leave heard after ${elapsedLeave} ms (liveness ${LIVENESS_MS} ms × 3, query timeout ${QUERY_TIMEOUT_MS} ms)`);
      expect(elapsedLeave).toBeLessThan(4 * LIVENESS_MS + 1500);
      // The bound: the entry expires 3 intervals after its last renewal, plus one query's wait and polling.
      expect(elapsedComplete).toBeLessThan(3 * LIVENESS_MS + 2 * QUERY_TIMEOUT_MS + 1500);
      const info = await channelInfo('room.k');
      expectAgreement(info, new Map([['w0', 1], ['w1', 0]]), 1);
      expect(await presence('room.k')).toMatchObject({ clients: [ada.clientId], complete: true, missing: [] });
      expect(notices.filter((n) => n.clientId === bob.clientId)).toHaveLength(2); // no second leave
    } finally {
      await third.stop('SIGKILL', 5000);
      testbed.cluster.workers.pop();
    }
  });

  it('channel names up to the longest allowed are answered; one character more is a 400 with the reason, not a 414', async () => {
    const longest = `quiet.${'x'.repeat(MAX_CHANNEL_NAME_LENGTH - 'quiet.'.length)}`;
    expect(await channelInfo(longest)).toMatchObject({ channel: longest, subscribers: 0, complete: true });
    const tooLong = await api.request<{ error: string; message: string }>('GET', `/v1/channels/${longest}y`);
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.message).toMatch(/channel/);
  });

  it('a channel without presence: info answers, presence is 404 with the reason, and no notices', async () => {
    const [w0, w1] = testbed.cluster.workers as [ManagedProcess, ManagedProcess];
    const [ada, bob] = await Promise.all([api.createClient('Ada'), api.createClient('Bob')]);
    const { notices } = await watcher(w0, ada.token, 'quiet.a', 'room.z');
    await subscribed(w1, bob.token, 'quiet.a');
    expect(await channelInfo('quiet.a')).toMatchObject({ subscribers: 2, presence: false, complete: true });
    const refused = await api.request<{ error: string; message: string }>('GET', '/v1/channels/quiet.a/presence');
    expect(refused.status).toBe(404);
    expect(refused.body).toEqual({ error: 'NotFound', message: 'presence is off for quiet.a: set presence: true on the channel policy that covers it' });
    // Bob's join to a presence channel after his join to quiet.a: once it arrived, a notice for quiet.a would have too.
    await subscribed(w1, bob.token, 'room.z');
    await waitFor(() => notices.some((n) => n.channel === 'room.z' && n.clientId === bob.clientId), 5000, 'Bob\'s join to room.z');
    expect(notices.filter((n) => n.channel === 'quiet.a')).toEqual([]);
  });

  it('follow a refresh that names another client: the socket is listed as the new client, subscribers hear the old leave and the new join', async () => {
    const [w0, w1] = testbed.cluster.workers as [ManagedProcess, ManagedProcess];
    const [eve, ada, bob] = await Promise.all([api.createClient('Eve'), api.createClient('Ada'), api.createClient('Bob')]);
    const { notices } = await watcher(w0, eve.token, 'room.r');
    const socket = await subscribed(w1, ada.token, 'room.r');
    await waitFor(() => notices.some((n) => n.clientId === ada.clientId && n.action === 'join'), 5000, "Ada's join");
    await socket.authenticate(bob.token);
    await waitFor(() => notices.some((n) => n.clientId === bob.clientId && n.action === 'join'), 5000, "Bob's join");
    expect(notices.filter((n) => n.clientId !== eve.clientId).map((n) => `${n.action} ${n.clientId}`)).toEqual([
      `join ${ada.clientId}`,
      `leave ${ada.clientId}`,
      `join ${bob.clientId}`,
    ]);
    expect((await presence('room.r')).clients).toEqual([bob.clientId, eve.clientId].sort());
  });

  it('are in the OpenAPI document, with their parameters and answers', async () => {
    const { body } = await testbed.anonymous.request<{ paths: Record<string, { get?: { parameters?: Array<{ name: string }>; responses: Record<string, unknown> } }> }>('GET', '/docs/json');
    const info = body.paths['/v1/channels/{channel}']?.get;
    const who = body.paths['/v1/channels/{channel}/presence']?.get;
    expect(info?.parameters?.map((p) => p.name)).toEqual(['channel']);
    expect(who?.parameters?.map((p) => p.name).sort()).toEqual(['channel', 'limit']);
    for (const route of [info, who]) expect(Object.keys(route!.responses)).toEqual(expect.arrayContaining(['200', '401', '404', '503']));
  });

  it('refuse without the admin key (401), and a bad channel or limit (400)', async () => {
    for (const path of ['/v1/channels/room.a', '/v1/channels/room.a/presence']) {
      expect((await testbed.anonymous.request('GET', path)).status, path).toBe(401);
      expect((await testbed.anonymous.request('GET', path, undefined, { 'x-api-key': 'nope' })).status, path).toBe(401);
    }
    for (const path of ['/v1/channels/%23sb.control', '/v1/channels/a%20b/presence', '/v1/channels/room.a/presence?limit=0', '/v1/channels/room.a/presence?limit=1001', '/v1/channels/room.a/presence?everyone=1']) {
      const answer = await api.request<{ error: string; message: string }>('GET', path);
      expect(answer.status, path).toBe(400);
      expect(answer.body.error, path).toBe('BadRequest');
      expect(answer.body.message, path).toBeTruthy();
    }
  });
});
