import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import socketClusterClient from 'socketcluster-client';
import { RESERVED_CHANNEL_NAMES, registryKeys, withTimeout, type Envelope } from '@socketbridge/common';
import {
  LocalCluster,
  PublisherApi,
  connectClient,
  devSecrets,
  handshakeRefusal,
  redisUrl,
  repoRoot,
  spawnNode,
  startPublisherTestbed,
  upgradeOutcome,
  waitFor,
  type PublisherTestbed,
} from '@socketbridge/devkit';

// A seeded generator: the same 1,000+ requests every run, so a failure can be replayed.
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]! };
}
const random = prng(20261126);

const nasty: unknown[] = [
  "' OR 1=1 --",
  '<script>alert(1)</script>',
  '{{7*7}}${7*7}',
  '${jndi:ldap://127.0.0.1/x}',
  '../../../../etc/passwd',
  'a\r\nSet-Cookie: admin=1',
  '*1\r\n$8\r\nFLUSHALL\r\n',
  "redis.call('FLUSHALL')",
  '\u0000\u0001\u001f',
  '\ud800',
  '‮evil‬',
  'ज़ॉफ़्फ़',
  '🦄'.repeat(500),
  'x'.repeat(10_000),
  'y'.repeat(70_000),
  '',
  ' ',
  0,
  -1,
  1e308,
  true,
  null,
  [],
  [1, 2, 3],
  {},
  { $ne: null },
  { __proto__: { admin: true } },
];
/** A path segment from any string (lone surrogates cannot be percent-encoded). */
const segment = (text: unknown, max: number) => encodeURIComponent(String(text).slice(0, max).replace(/[\ud800-\udfff]/g, '\ufffd'));
const deep = (depth: number): unknown => (depth === 0 ? 'bottom' : { d: deep(depth - 1) });
const value = (): unknown => (random.next() < 0.1 ? deep(50 + Math.floor(random.next() * 500)) : random.pick(nasty));

/** Sends one raw HTTP request and resolves with the status of the answer (within a second). */
async function rawStatus(port: number, request: string): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  try {
    const head = await withTimeout(
      new Promise<string>((resolve, reject) => {
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text.includes('\r\n')) resolve(text);
        });
        socket.once('error', reject);
        socket.once('connect', () => socket.write(request));
      }),
      1000,
      `an answer to ${JSON.stringify(request.split('\r\n')[0])} on port ${port}`,
    );
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  } finally {
    socket.destroy();
  }
}

/**
 * Dribbles request headers (a line a second, never the blank line that ends them) and resolves with
 * what the server did: the status it answered with before closing, and after how long.
 */
async function dribbleHeaders(port: number, timeoutMs: number): Promise<{ status: number; ms: number }> {
  const socket = connect(port, '127.0.0.1');
  const started = Date.now();
  let lines = 0;
  const drip = setInterval(() => socket.write(`x-drip-${lines++}: ${'a'.repeat(10)}\r\n`), 1000);
  try {
    return await withTimeout(
      new Promise((resolve, reject) => {
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
        socket.once('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), ms: Date.now() - started }));
        socket.once('error', reject);
        socket.once('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n'));
      }),
      timeoutMs,
      `port ${port} to cut off a client that never finishes its headers`,
    );
  } finally {
    clearInterval(drip);
    socket.destroy();
  }
}

let testbed: PublisherTestbed;
let cluster: LocalCluster;
let api: PublisherApi;
let anonymous: PublisherApi;
const redis = new Redis(redisUrl(), { lazyConnect: true });

beforeAll(async () => {
  testbed = await startPublisherTestbed('security', { env: { SOCKETBRIDGE_AUTH_RATE_LIMIT: '100000' } });
  ({ cluster, api, anonymous } = testbed);
  await redis.connect();
});
afterAll(async () => {
  redis.disconnect();
  await testbed.teardown();
});

describe('security and bad-input pass', () => {
  it('1,000+ generated REST requests: no 5xx, every refusal has a reason, no admin access without the key, nothing half-stored', async () => {
    const victim = await api.createClient('Victim');
    const tally: Record<string, number> = {};
    const count = (key: string) => (tally[key] = (tally[key] ?? 0) + 1);
    let created = 0;
    const refusedEmails = new Set<string>();
    for (let i = 0; i < 1100; i++) {
      const kind = random.pick(['create', 'create-alias', 'token', 'token-victim', 'bridge', 'publish', 'client', 'path'] as const);
      let response;
      if (kind === 'create' || kind === 'create-alias') {
        const body: Record<string, unknown> = { name: value(), email: value(), password: value() };
        if (random.next() < 0.3) body[String(random.pick(nasty))] = value();
        if (random.next() < 0.2) delete body[random.pick(['name', 'email', 'password'])];
        response = await anonymous.request('POST', kind === 'create' ? '/v1/create-channel-client' : '/v1/clients', random.next() < 0.1 ? String(random.pick(nasty)) : body);
        if (response.status === 201) created++;
        else if (typeof body.email === 'string') refusedEmails.add(body.email.trim().toLowerCase());
      } else if (kind === 'token' || kind === 'token-victim') {
        const email = kind === 'token-victim' ? victim.email : value();
        response = await anonymous.request('POST', '/v1/tokens', { email, password: value() });
        expect(response.status, 'a wrong password never signs in').not.toBe(200);
      } else if (kind === 'bridge') {
        response = await anonymous.request('PUT', `/v1/bridges/${segment(random.pick(nasty), 300)}`, { queues: value(), channels: value() });
        expect([401, 404, 414]).toContain(response.status); // 401 before any validation; 404 when the name is no path segment; 414 too long to route
      } else if (kind === 'publish') {
        response = await anonymous.request('POST', '/v1/publish', { channel: value(), data: value() }, { 'x-api-key': String(random.pick(nasty)).slice(0, 100).replace(/[^\x20-\x7e]/g, '?') });
        expect(response.status).toBe(401); // a wrong key: 401 whatever the body
      } else if (kind === 'client') {
        response = await anonymous.request('GET', `/v1/clients/${segment(random.pick(nasty), 300)}`);
        expect([401, 404, 414]).toContain(response.status);
      } else {
        response = await anonymous.request(random.pick(['GET', 'POST', 'DELETE', 'PATCH']), `/${segment(random.pick(nasty), 500)}`);
      }
      count(`${kind} ${response.status}`);
      expect(response.status, `${kind} answered ${response.status}`).toBeLessThan(500);
      if (response.status >= 400) expect(response.body, `${kind} ${response.status}`).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    }
    // Nothing half-way: every claimed email has its client, every client its email.
    const emails = await redis.hgetall(registryKeys.emails);
    for (const [email, id] of Object.entries(emails)) expect(await redis.hget(registryKeys.client(id), 'email')).toBe(email);
    // And no refused sign-up left its email claimed (the fuzz never repeats a created one).
    for (const email of refusedEmails) expect(await redis.hget(registryKeys.emails, email), email).toBeNull();
    expect(cluster.publishers[0]!.running).toBe(true);
    console.log(`REST: 1100 requests, ${created} well-formed sign-ups; by route and status: ${JSON.stringify(tally)}`);
  }, 120_000);

  it('1,000+ socket actions: bad tokens, foreign and odd channels, client publishes, junk and oversized frames; nobody gets in', async () => {
    const worker = cluster.workers[0]!;
    const [alice, bob] = [await api.createClient('Alice'), await api.createClient('Bob')];
    const key = new TextEncoder().encode(devSecrets.SOCKETBRIDGE_AUTH_KEY!);
    const tally: Record<string, number> = {};
    const count = (k: string) => (tally[k] = (tally[k] ?? 0) + 1);

    // 1. Handshakes with bad tokens: each must be refused.
    const badTokens: string[] = [
      'garbage',
      'a.b.c',
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: bob.clientId, channels: [bob.channel] })).toString('base64url')}.`,
      await new SignJWT({ channels: [bob.channel] }).setProtectedHeader({ alg: 'HS256' }).setSubject(bob.clientId).setExpirationTime('1h').sign(new TextEncoder().encode('wrong-key-wrong-key-wrong-key-wrong-key')),
      await new SignJWT({ channels: [bob.channel] }).setProtectedHeader({ alg: 'HS256' }).setSubject(bob.clientId).setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(key),
      await new SignJWT({ channels: 'everything' }).setProtectedHeader({ alg: 'HS256' }).setSubject(bob.clientId).setExpirationTime('1h').sign(key),
      await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key),
      'x'.repeat(50_000),
    ];
    for (let i = 0; i < 120; i++) {
      const token = badTokens[i % badTokens.length]!;
      const refusal = await handshakeRefusal(worker.port, { token }).catch((error: Error) => error);
      expect(refusal.message).not.toBe('the handshake was accepted');
      count(`handshake refused ${refusal.name}`);
    }

    // 2. Subscriptions from a signed-in client to channels that are not hers, and to odd names.
    const socket = await connectClient(worker.port, { token: alice.token });
    const odd = ['', '#', '*', '..', 'client.', `client.${bob.clientId}`, `client.${bob.clientId}.x`, 'client.*', 'a'.repeat(201), '\u0000', 'é', 'broadcast.x', 'socketbridge:bridges', '{clientId}'];
    for (let i = 0; i < 600; i++) {
      const name = i % 3 === 0 ? odd[i % odd.length]! : `${random.pick(['client', 'prices', 'x'])}.${String(random.pick(nasty)).slice(0, 50)}`;
      const channel = socket.subscribe(name);
      const outcome = await Promise.race([
        channel.listener('subscribe').once().then(() => 'allowed'),
        channel.listener('subscribeFail').once().then(({ error }) => `refused ${error.name}`),
      ]);
      count(`subscribe ${outcome}`);
      expect(outcome, `subscription to ${JSON.stringify(name.slice(0, 60))}`).not.toBe('allowed');
      channel.close();
      socket.unsubscribe(name);
    }

    // 3. Client publishes (to her own channel too) and bad recover calls.
    for (let i = 0; i < 200; i++) {
      const error = await socket.invokePublish(random.pick([alice.channel, bob.channel, 'broadcast']), value()).catch((e: Error) => e);
      count(`publish ${error instanceof Error ? `refused ${error.name}` : 'ALLOWED'}`);
      expect(error).toBeInstanceOf(Error);
    }
    for (let i = 0; i < 100; i++) {
      const request = random.pick([{ channel: bob.channel, since: '0-0' }, { channel: value(), since: value() }, value()]);
      const answer = await socket.invoke('recover', request).catch((e: Error) => e);
      count(`recover ${answer instanceof Error ? `refused ${answer.name}` : 'answered'}`);
      if (!(answer instanceof Error)) expect((request as { channel?: unknown }).channel).not.toBe(bob.channel);
    }

    // 4. Raw frames: junk, unknown events, and frames over the size limit.
    for (let i = 0; i < 60; i++) {
      const raw = new WebSocket(`ws://127.0.0.1:${worker.port}/socketcluster/`);
      const closed = new Promise<number>((resolve) => raw.once('close', (code) => resolve(code)));
      await new Promise((resolve) => raw.once('open', resolve).once('error', resolve));
      const frame = random.pick([
        '{"event":"#handshake","data":{},"cid":1}{{{',
        Buffer.from([0xde, 0xad, 0xbe, 0xef]),
        JSON.stringify({ event: '#publish', data: { channel: alice.channel, data: 'forged' } }),
        JSON.stringify({ event: '#subscribe', data: { channel: bob.channel }, cid: 2 }),
        JSON.stringify({ event: 'recover', data: { channel: bob.channel, since: '0-0' }, cid: 3 }),
        'z'.repeat(70 * 1024),
      ]);
      if (raw.readyState === WebSocket.OPEN) raw.send(frame);
      raw.close();
      count(`raw frame closed ${await closed}`);
    }
    socket.disconnect();

    const total = Object.values(tally).reduce((a, b) => a + b, 0);
    console.log(`sockets: ${total} actions; ${JSON.stringify(tally)}`);
    expect(total).toBeGreaterThanOrEqual(1000);
    expect(worker.running).toBe(true);
    // Still serving: Alice can use her own channel.
    const fresh = await connectClient(worker.port, { token: alice.token });
    const own = fresh.subscribe(alice.channel);
    await waitFor(() => own.isSubscribed(), 10000, 'her own subscription');
    fresh.disconnect();
  }, 180_000);

  it("the cluster's own doors: no key, a wrong key, eavesdropping, forging, prototype names, plain GETs, ops endpoints", async () => {
    const tally: Record<string, number> = {};
    const count = (k: string) => (tally[k] = (tally[k] ?? 0) + 1);
    const [state, broker, worker, publisher] = [cluster.state, cluster.brokers[0]!, cluster.workers[0]!, cluster.publishers[0]!];
    const clusterKey = devSecrets.SCC_AUTH_KEY!;
    const memberQuery = { instanceType: 'scc-worker', instancePort: '9', version: '10.0.0' };

    // 1. Brokers and the state server refuse a missing or wrong cluster key at the upgrade: no socket at all.
    const wrongKeys = ['', 'wrong', clusterKey.slice(0, -1), `${clusterKey}x`, clusterKey.toUpperCase(), `${clusterKey.slice(0, -1)}${clusterKey.endsWith('0') ? '1' : '0'}`, ' '.repeat(clusterKey.length), 'x'.repeat(10_000)];
    for (const port of [broker.port, state.port]) {
      for (const authKey of [undefined, ...wrongKeys]) {
        const outcome = await upgradeOutcome(port, authKey === undefined ? memberQuery : { ...memberQuery, authKey });
        expect(outcome, `port ${port} with key ${JSON.stringify(authKey?.slice(0, 20))}`).toMatchObject({ status: 401, errorName: 'BadClusterAuthError' });
        count(`${port === broker.port ? 'broker' : 'state'} upgrade ${outcome.status} ${outcome.errorName}`);
      }
      expect((await upgradeOutcome(port, { ...memberQuery, authKey: clusterKey })).status).toBe(101);
    }

    // 2. Eavesdrop and forge through a broker with a wrong key: the subscription and the forged
    // envelope fail, and Alice, on a worker, receives the real message and never the forgery.
    const alice = await api.createClient('Alice');
    const aliceSocket = await connectClient(worker.port, { token: alice.token });
    const received: Envelope[] = [];
    const own = aliceSocket.subscribe(alice.channel);
    void (async () => {
      for await (const data of own) received.push(data as Envelope);
    })();
    await withTimeout(own.listener('subscribe').once(), 10000, "Alice's subscription");
    const forged: Envelope = { id: 'forged', offset: '9999999999999-0', prev: '0-0', ts: Date.now(), data: { forged: true } };
    for (const authKey of [undefined, 'wrong-key-wrong-key-wrong-key']) {
      const intruder = socketClusterClient.create({ hostname: '127.0.0.1', port: broker.port, autoReconnect: false, query: authKey ? { authKey } : {} });
      let connected = false;
      void intruder.listener('connect').once().then(() => (connected = true));
      const eavesdrop = intruder.subscribe(alice.channel);
      const subscribed = await withTimeout(
        Promise.race([eavesdrop.listener('subscribe').once().then(() => true), intruder.listener('close').once().then(() => false)]),
        10000,
        'the intruder to be turned away',
      );
      const publish = await withTimeout(intruder.invokePublish(alice.channel, { sender: 'intruder', messages: [forged] }).then(() => 'accepted', (e: Error) => `refused ${e.name}`), 10000, 'the forged publish');
      intruder.disconnect();
      expect(subscribed, 'eavesdropping subscription').toBe(false);
      expect(publish, 'forged publish').toMatch(/^refused /);
      expect(connected).toBe(false);
      count(`broker ${authKey ? 'wrong key' : 'no key'}: subscribe refused, publish ${publish}`);
    }
    // The real message after the attempts: once it is there, anything forged would have been delivered before it.
    expect((await api.request('POST', '/v1/publish', { channel: alice.channel, data: { real: true } })).status).toBe(202);
    await waitFor(() => received.some((e) => (e.data as { real?: boolean })?.real === true), 10000, 'the real message');
    expect(received.filter((e) => e.id === 'forged' || e.offset === forged.offset)).toEqual([]);
    aliceSocket.disconnect();

    // 3. Procedure names from Object.prototype: the unknown-procedure error, never the server's objects.
    const prototypeNames = [...RESERVED_CHANNEL_NAMES];
    for (const [label, port, query] of [['worker', worker.port, ''], ['broker', broker.port, `?authKey=${clusterKey}`]] as const) {
      const raw = new WebSocket(`ws://127.0.0.1:${port}/socketcluster/${query}`);
      const answers = new Map<number, { data?: unknown; error?: { name?: string; message?: string } }>();
      raw.on('message', (frame) => {
        const text = String(frame);
        if (!text.startsWith('{')) return;
        const packet = JSON.parse(text) as { rid?: number; data?: unknown; error?: { name?: string } };
        if (typeof packet.rid === 'number') answers.set(packet.rid, packet);
      });
      await withTimeout(new Promise((resolve, reject) => raw.once('open', resolve).once('error', reject)), 5000, `${label} to open`);
      raw.send(JSON.stringify({ event: '#handshake', data: {}, cid: 1 }));
      await waitFor(() => answers.has(1), 5000, `${label}'s handshake`);
      expect(answers.get(1)!.error).toBeUndefined();
      prototypeNames.forEach((event, i) => raw.send(JSON.stringify({ event, data: null, cid: 10 + i })));
      await waitFor(() => prototypeNames.every((_, i) => answers.has(10 + i)), 5000, `${label}'s answers to prototype names`);
      prototypeNames.forEach((event, i) => {
        const answer = answers.get(10 + i)!;
        expect(answer.error?.name, `${label} ${event}`).toBe('InvalidActionError');
        expect(answer.data, `${label} ${event}`).toBeUndefined();
        count(`${label} procedure ${answer.error?.name}`);
      });
      if (label === 'worker') {
        // …and as channel names (raw frames: socketcluster-client itself keeps channels in a plain object).
        prototypeNames.forEach((channel, i) => raw.send(JSON.stringify({ event: '#subscribe', data: { channel }, cid: 100 + i })));
        await waitFor(() => prototypeNames.every((_, i) => answers.has(100 + i)), 5000, 'the worker\'s answers to prototype channel names');
        prototypeNames.forEach((channel, i) => {
          const answer = answers.get(100 + i)!;
          expect(answer.error?.message, channel).toContain('Object.prototype');
          count(`subscribe to a prototype name refused ${answer.error?.name}`);
        });
      }
      raw.close();
    }
    for (const name of ['__proto__', 'constructor', 'toString']) {
      expect((await api.request('POST', '/v1/publish', { channel: name, data: {} })).status, `REST publish on ${name}`).toBe(400);
    }
    expect(worker.running && broker.running).toBe(true);

    // 4. A plain GET (no Upgrade) on every socket path: 426 at once, not a connection left hanging.
    for (const [label, port] of [['worker', worker.port], ['broker', broker.port], ['state', state.port]] as const) {
      const started = Date.now();
      const response = await fetch(`http://127.0.0.1:${port}/socketcluster/`, { signal: AbortSignal.timeout(1000) });
      expect(response.status, label).toBe(426);
      expect(Date.now() - started, label).toBeLessThan(1000);
      count(`${label} plain GET ${response.status}`);
      // Request targets that are Object.prototype names (no leading slash, too): an answer, never a route.
      for (const target of ['constructor', '__proto__', '/__proto__', '/constructor', 'toString', '*']) {
        const status = await rawStatus(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
        expect([400, 404], `${label} GET ${target}`).toContain(status);
        count(`${label} GET <prototype name> ${status}`);
      }
    }

    // …and a client that never finishes its headers is cut off after the 10 s header timeout (408), on every port.
    const dribbled = await Promise.all([worker, broker, state, publisher].map((p) => dribbleHeaders(p.port, 20_000)));
    for (const outcome of dribbled) {
      expect(outcome.status).toBe(408);
      count(`dribbled headers cut off: ${outcome.status}`);
    }

    // 5. Ops endpoints: 401 without the ops key or with another key (the cluster key, the admin key), 200 with it; probes stay open.
    const opsKey = devSecrets.SOCKETBRIDGE_OPS_KEY!;
    const endpoints: Array<[string, number, string]> = [
      ['state', state.port, '/state'],
      ['state', state.port, '/metrics'],
      ['broker', broker.port, '/metrics'],
      ['worker', worker.port, '/metrics'],
      ['worker', worker.port, '/cluster'],
      ['publisher', publisher.port, '/metrics'],
      ['publisher', publisher.port, '/cluster'],
    ];
    for (const [label, port, path] of endpoints) {
      for (const authorization of [undefined, 'Bearer', `Bearer ${clusterKey}`, `Bearer ${devSecrets.SOCKETBRIDGE_API_KEY}`, `Bearer ${opsKey}x`, `Basic ${Buffer.from(`ops:${opsKey}`).toString('base64')}`]) {
        const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: authorization ? { authorization } : {} });
        expect(response.status, `${label} ${path} with ${authorization?.split(' ')[0] ?? 'nothing'}`).toBe(401);
        count(`${label} ${path} ${response.status}`);
      }
      expect((await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${opsKey}` } })).status, `${label} ${path} with the key`).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status, `${label} /healthz`).toBe(200);
    }

    // 6. No member starts without its cluster key (or with a short one), and the error names the variable.
    for (const service of ['state', 'broker', 'worker', 'publisher']) {
      for (const key of ['', 'short-key']) {
        const child = spawnNode(`${service}-no-key`, `${repoRoot}services/${service}/dist/main.js`, { ...devSecrets, SCC_AUTH_KEY: key, SOCKETBRIDGE_LOG_LEVEL: 'info' });
        const exit = await withTimeout(child.exited, 20000, `${service} to refuse to start`);
        expect(exit.code, `${service} with SCC_AUTH_KEY=${JSON.stringify(key)}`).toBe(1);
        expect(child.raw.join('\n')).toMatch(key ? /SCC_AUTH_KEY: must be at least 16 characters/ : /SCC_AUTH_KEY: required/);
        count(`${service} start without a valid SCC_AUTH_KEY: exit ${exit.code}`);
      }
    }

    const total = Object.values(tally).reduce((a, b) => a + b, 0);
    console.log(`cluster: ${total} attempts; ${JSON.stringify(tally)}`);
  }, 120_000);
});
