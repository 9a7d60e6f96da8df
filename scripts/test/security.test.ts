import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { registryKeys } from '@socketbridge/common';
import {
  LocalCluster,
  PublisherApi,
  connectClient,
  devSecrets,
  handshakeRefusal,
  redisUrl,
  startPublisherTestbed,
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
        expect([401, 404, 400, 413, 414]).toContain(response.status);
      } else if (kind === 'publish') {
        response = await anonymous.request('POST', '/v1/publish', { channel: value(), data: value() }, { 'x-api-key': String(random.pick(nasty)).slice(0, 100).replace(/[^\x20-\x7e]/g, '?') });
        expect([401, 400, 413]).toContain(response.status);
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
});
