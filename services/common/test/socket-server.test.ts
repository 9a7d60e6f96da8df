import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import AGSimpleBroker from 'ag-simple-broker';
import { SignJWT } from 'jose';
import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import WebSocket from 'ws';
import { tokenAuthEngine } from '@socketbridge/client';
import { waitFor } from '@socketbridge/devkit';
import { installDirectFanout } from '../src/fanout.js';
import { SocketServer, type ClientSocket, type SocketGates } from '../src/socket-server.js';
import type { HandshakeAuth } from '../src/tokens.js';
import { withTimeout } from '../src/wait.js';

/** A refusal as the services throw them: a name and message for the client, a reason for metrics. */
class Refusal extends Error {
  constructor(
    readonly reason: string,
    message: string,
    override readonly name: string,
  ) {
    super(message);
  }
}

// The SocketCluster protocol layer of workers and brokers, in process, with short timers: socketcluster-client
// (what users run) and raw frames (what a misbehaving client sends) against it.
const authKey = 'socket-server-test-key-socket-server-test-key';
const key = new TextEncoder().encode(authKey);
const timers = { pingIntervalMs: 200, pingTimeoutMs: 600, handshakeTimeoutMs: 400 };

interface Bed {
  port: number;
  server: SocketServer;
  broker: AGSimpleBroker;
  handshakes: HandshakeAuth[];
  gates: SocketGates;
}
let bed: Bed | undefined;
const clients: AGClientSocket[] = [];
const raws: WebSocket[] = [];

afterEach(async () => {
  for (const socket of clients.splice(0)) socket.disconnect();
  for (const ws of raws.splice(0)) ws.terminate();
  if (bed) {
    const { server } = bed;
    bed = undefined;
    await server.close();
  }
});

async function start(gates: Partial<SocketGates> = {}, maxChannelsPerSocket?: number): Promise<Bed> {
  const httpServer: Server = createServer();
  const broker = new AGSimpleBroker();
  const handshakes: HandshakeAuth[] = [];
  const allGates: SocketGates = {
    handshake: (_socket, auth) => void handshakes.push(auth),
    subscribe: () => undefined,
    publish: () => undefined,
    procedures: {},
    ...gates,
  };
  const server = new SocketServer({ httpServer, path: '/socketcluster/', authKey, maxPayload: 64 * 1024, maxChannelsPerSocket, ...timers, broker, gates: allGates, onError: () => undefined });
  installDirectFanout(broker);
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const address = httpServer.address();
  bed = { port: typeof address === 'object' && address ? address.port : 0, server, broker, handshakes, gates: allGates };
  return bed;
}

async function client(port: number, token?: string): Promise<AGClientSocket> {
  const socket = socketClusterClient.create({ hostname: '127.0.0.1', port, autoReconnect: false, ...(token ? { authEngine: tokenAuthEngine(token) } : {}) });
  clients.push(socket);
  await withTimeout(socket.listener('connect').once(), 5000, 'the handshake');
  return socket;
}

/** A bare WebSocket speaking the protocol by hand: every frame it gets, and how it was closed. */
async function raw(port: number, options: { pong?: boolean } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socketcluster/`);
  raws.push(ws);
  const frames: Record<string, unknown>[] = [];
  let pings = 0;
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('message', (data) => {
    const text = String(data);
    if (text === '') {
      pings++;
      if (options.pong !== false) ws.send('');
    } else frames.push(JSON.parse(text) as Record<string, unknown>);
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const send = (packet: unknown) => ws.send(JSON.stringify(packet));
  const reply = async (rid: number) => {
    await waitFor(() => frames.some((f) => f.rid === rid), 5000, `the answer to request ${rid}`);
    return frames.find((f) => f.rid === rid)!;
  };
  return { ws, frames, closed, send, reply, pings: () => pings };
}

const sign = (claims: Record<string, unknown>, expires: string | number) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('client-1').setExpirationTime(expires).sign(key);

describe('the socket server (SocketCluster protocol v2)', () => {
  it('serves socketcluster-client: handshake, subscribe, a publish, unsubscribe, disconnect', async () => {
    const { port, server, broker } = await start();
    const socket = await client(port);
    const channel = socket.subscribe('room-1');
    await withTimeout(channel.listener('subscribe').once(), 5000, 'the subscription');
    expect(broker.subscriptions()).toEqual(['room-1']);
    const received = withTimeout(channel.once(), 5000, 'the publish');
    await broker.transmitPublish('room-1', { hello: 'world' });
    expect(await received).toEqual({ hello: 'world' });

    socket.unsubscribe('room-1');
    await waitFor(() => broker.subscriptions().length === 0, 5000, 'the unsubscription');
    expect(server.clientsCount).toBe(1);
    socket.disconnect();
    await waitFor(() => server.clientsCount === 0, 5000, 'the socket to be gone');
  });

  it('fans a publish out as one pre-built frame: every length encoding arrives intact, in order', async () => {
    const { port, broker } = await start();
    const sockets = [await client(port), await client(port)];
    const channels = sockets.map((socket) => socket.subscribe('sizes'));
    await Promise.all(channels.map((channel) => withTimeout(channel.listener('subscribe').once(), 5000, 'the subscription')));
    // 7-bit, 16-bit and 64-bit payload lengths, and UTF-8 beyond ASCII.
    const bodies = ['x', 'é'.repeat(200), 'y'.repeat(70_000)].map((text, seq) => ({ seq, text }));
    const received = channels.map(async (channel) => {
      const got: unknown[] = [];
      for await (const data of channel) {
        got.push(data);
        if (got.length === bodies.length) break;
      }
      return got;
    });
    for (const body of bodies) await broker.transmitPublish('sizes', body);
    for (const got of received) expect(await withTimeout(got, 5000, 'every body')).toEqual(bodies);
  });

  it('verifies tokens: claims for a good one, named errors for expired, forged and non-string ones', async () => {
    const { port, handshakes } = await start();
    const good = await client(port, await sign({ channels: ['a'] }, '1h'));
    expect(good.authState).toBe('authenticated');
    expect(handshakes[0]).toMatchObject({ authTokenError: null, authToken: { sub: 'client-1', channels: ['a'] } });

    const expired = await sign({ channels: ['a'] }, Math.floor(Date.now() / 1000) - 10);
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode('another-key-another-key-another-key'));
    for (const token of [expired, forged, 'not.a.jwt']) {
      const socket = await client(port, token);
      expect(socket.authState, 'a bad token does not authenticate').toBe('unauthenticated');
    }
    expect(handshakes.slice(1).map((h) => h.authTokenError?.name)).toEqual(['AuthTokenExpiredError', 'AuthTokenInvalidError', 'AuthTokenInvalidError']);

    const odd = await raw(port);
    odd.send({ event: '#handshake', data: { authToken: { not: 'a string' } }, cid: 1 });
    expect(((await odd.reply(1)).data as { isAuthenticated: boolean }).isAuthenticated).toBe(false);
    expect(handshakes.at(-1)?.authTokenError?.name).toBe('AuthTokenInvalidError');
  });

  it('a refused handshake gets the refusal, then close code 4008', async () => {
    const { port } = await start({ handshake: () => Promise.reject(new Refusal('no_token', 'sign in first', 'AuthRequiredError')) });
    const socket = await raw(port);
    socket.send({ event: '#handshake', data: {}, cid: 1 });
    expect((await socket.reply(1)).error).toMatchObject({ name: 'AuthRequiredError', message: 'sign in first', reason: 'no_token' });
    expect(await socket.closed).toBe(4008);
  });

  it('a token that expires while connected is dropped: #removeAuthToken, and the next request runs unauthenticated', async () => {
    const seen: (Record<string, unknown> | null)[] = [];
    const { port } = await start({ subscribe: (socket: ClientSocket) => void seen.push(socket.authToken) });
    // At least a second ahead (exp counts whole seconds): floor(now) + 1 may be a few ms away, and the handshake then finds it expired.
    const exp = Math.ceil(Date.now() / 1000) + 1;
    const socket = await client(port, await sign({ channels: ['a'] }, exp));
    await withTimeout(socket.subscribe('first').listener('subscribe').once(), 5000, 'the first subscription');
    expect(seen[0]).toMatchObject({ sub: 'client-1' });
    // Whatever the client says next (a pong, here or a request) finds the token expired.
    const deauthenticated = withTimeout(socket.listener('deauthenticate').once(), 5000, 'the client to drop its token');
    await waitFor(() => Date.now() > exp * 1000 + 50, 5000, 'the token to expire');
    await withTimeout(socket.subscribe('second').listener('subscribe').once(), 5000, 'the second subscription');
    await deauthenticated;
    expect(seen[1]).toBeNull();
  });

  it('closes a socket that never completes the handshake (4005), sends nothing first (4009), or stops answering pings (4001)', async () => {
    const { port } = await start();
    const silent = await raw(port);
    expect(await withTimeout(silent.closed, 5000, 'the handshake timeout')).toBe(4005);

    const early = await raw(port);
    early.send({ event: '#subscribe', data: { channel: 'x' }, cid: 1 });
    expect(await withTimeout(early.closed, 5000, 'the strict-handshake close')).toBe(4009);

    const deaf = await raw(port, { pong: false });
    deaf.send({ event: '#handshake', data: {}, cid: 1 });
    await deaf.reply(1);
    expect(await withTimeout(deaf.closed, 5000, 'the pong timeout')).toBe(4001);
    expect(deaf.pings()).toBeGreaterThanOrEqual(2);
  });

  it('keeps a socket that answers its pings open well past the ping timeout', async () => {
    const { port, server } = await start();
    const alive = await raw(port);
    alive.send({ event: '#handshake', data: {}, cid: 1 });
    await alive.reply(1);
    // 8 pings at 200 ms span 1.6 s, well past the 600 ms timeout.
    await waitFor(() => alive.pings() >= 8, 10000, '8 pings');
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
    expect(server.clientsCount).toBe(1);
  });

  it("handles a socket's requests in order (batches too), and answers procedures, unknown ones with an error", async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { port } = await start({
      subscribe: (_socket, channel) => (channel === 'slow' ? held : undefined),
      procedures: {
        echo: (_socket, data) => data,
        refuse: () => {
          throw new Refusal('bad_request', 'no such thing', 'BadRequestError');
        },
      },
    });
    const socket = await raw(port);
    socket.send({ event: '#handshake', data: {}, cid: 1 });
    await socket.reply(1);
    socket.send([
      { event: '#subscribe', data: { channel: 'slow' }, cid: 2 },
      { event: '#subscribe', data: { channel: 'fast' }, cid: 3 },
    ]);
    socket.send({ event: 'echo', data: { n: 1 }, cid: 4 });
    expect((await socket.reply(4)).data, 'procedures do not wait behind a slow subscribe').toEqual({ n: 1 });
    expect(socket.frames.some((f) => f.rid === 3), 'the second subscribe waits for the first').toBe(false);
    release();
    await socket.reply(3);
    const order = socket.frames.map((f) => f.rid).filter((rid) => rid === 2 || rid === 3);
    expect(order).toEqual([2, 3]);

    socket.send({ event: 'refuse', data: null, cid: 5 });
    expect((await socket.reply(5)).error).toMatchObject({ name: 'BadRequestError', reason: 'bad_request' });
    socket.send({ event: 'nothing-here', data: null, cid: 6 });
    expect((await socket.reply(6)).error).toMatchObject({ name: 'InvalidActionError' });
    socket.send({ event: '#subscribe', data: { channel: 42 }, cid: 7 });
    expect((await socket.reply(7)).error).toMatchObject({ name: 'InvalidActionError' });
    socket.send({ event: '#unsubscribe', data: 'never-subscribed', cid: 8 });
    expect((await socket.reply(8)).error).toMatchObject({ name: 'InvalidActionError' });
  });

  it('refuses a subscription past the per-socket channel limit, and allows it again after an unsubscribe', async () => {
    const { port } = await start({}, 3);
    const socket = await raw(port);
    socket.send({ event: '#handshake', data: {}, cid: 1 });
    await socket.reply(1);
    for (const [cid, channel] of [[2, 'a'], [3, 'b'], [4, 'c'], [5, 'a']] as const) {
      socket.send({ event: '#subscribe', data: { channel }, cid });
      expect((await socket.reply(cid)).error, `subscription ${cid}`).toBeUndefined();
    }
    socket.send({ event: '#subscribe', data: { channel: 'd' }, cid: 6 });
    expect((await socket.reply(6)).error).toMatchObject({ name: 'InvalidActionError', message: expect.stringMatching(/at most 3 channels/) });
    socket.send({ event: '#unsubscribe', data: 'a', cid: 7 });
    await socket.reply(7);
    socket.send({ event: '#subscribe', data: { channel: 'd' }, cid: 8 });
    expect((await socket.reply(8)).error).toBeUndefined();
  });

  it('client publishes pass the publish gate, then reach the broker; refused ones get the refusal', async () => {
    const { port, broker } = await start({
      publish: (_socket, channel) => {
        if (channel !== 'open') throw new Refusal('client_publish', 'not here', 'PublishRefusedError');
      },
    });
    const published = withTimeout(broker.listener('publish').once(), 5000, 'the publish to reach the broker');
    const socket = await client(port);
    await socket.invokePublish('open', { n: 1 });
    expect(await published).toEqual({ channel: 'open', data: { n: 1 } });
    await expect(socket.invokePublish('closed', { n: 2 })).rejects.toMatchObject({ name: 'PublishRefusedError' });
  });

  it('closes a socket that floods requests past the limit (1008) and forgets its subscriptions', async () => {
    const held = new Promise<void>(() => undefined);
    const { port, server, broker } = await start({ subscribe: (_socket, channel) => (channel === 'stuck' ? held : undefined) });
    const socket = await raw(port);
    socket.send({ event: '#handshake', data: {}, cid: 1 });
    await socket.reply(1);
    socket.send({ event: '#subscribe', data: { channel: 'kept' }, cid: 2 });
    await socket.reply(2);
    expect(broker.subscriptions()).toEqual(['kept']);
    socket.send(Array.from({ length: 1001 }, (_, i) => ({ event: '#subscribe', data: { channel: 'stuck' }, cid: 10 + i })));
    expect(await withTimeout(socket.closed, 5000, 'the flood close')).toBe(1008);
    await waitFor(() => server.clientsCount === 0 && broker.subscriptions().length === 0, 5000, 'the socket and its subscriptions to be gone');
  });
});
