import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { PublisherApi, devSecrets, redisUrl, startPublisherTestbed, type PublisherTestbed } from '@socketbridge/devkit';

let testbed: PublisherTestbed;
let api: PublisherApi;
let anonymous: PublisherApi;
const redis = new Redis(redisUrl(), { lazyConnect: true });

beforeAll(async () => {
  testbed = await startPublisherTestbed('rest', { env: { SOCKETBRIDGE_AUTH_RATE_LIMIT: '40' } });
  ({ api, anonymous } = testbed);
  await redis.connect();
});
afterAll(async () => {
  redis.disconnect();
  await testbed.teardown();
});

const good = () => ({ name: 'Ada', email: `ada-${Math.random().toString(36).slice(2)}@example.test`, password: 'long enough password' });

describe('REST bad input gets the right 4xx with a reason, and nothing is stored half-way', () => {
  it('refuses malformed bodies, wrong shapes and oversized requests', async () => {
    const before = await redis.hlen(registryKeys.emails);
    const cases: Array<[string, unknown, number, RegExp]> = [
      ['malformed JSON', '{"name": "Ada", ', 400, /JSON/i],
      ['missing field', { name: 'Ada', email: 'a@example.test' }, 400, /password/],
      ['extra field', { ...good(), admin: true }, 400, /additional propert/i],
      ['wrong type', { ...good(), name: 42 }, 400, /name/],
      ['empty name', { ...good(), name: '' }, 400, /name/],
      ['control characters', { ...good(), name: 'a\u0000b' }, 400, /name/],
      ['bad email', { ...good(), email: 'not-an-email' }, 400, /email/],
      ['short password', { ...good(), password: 'short' }, 400, /password/],
      ['array body', [good()], 400, /object/],
      ['oversized body', { ...good(), name: 'x'.repeat(70 * 1024) }, 413, /large|limit/i],
    ];
    for (const [what, body, status, message] of cases) {
      const response = await api.request<{ error: string; message: string }>('POST', '/v1/create-channel-client', body);
      expect(response.status, what).toBe(status);
      expect(response.body.error, what).toEqual(expect.any(String));
      expect(response.body.message, what).toMatch(message);
    }
    const textBody = await api.request('POST', '/v1/create-channel-client', 'name=Ada', { 'content-type': 'text/plain' });
    expect(textBody.status).toBe(415);
    expect(await redis.hlen(registryKeys.emails)).toBe(before);
  });

  it('answers 409 for a duplicate email (in any case) and stores only the first', async () => {
    const body = good();
    expect((await api.request('POST', '/v1/create-channel-client', body)).status).toBe(201);
    const before = await redis.scard(registryKeys.clientIds);
    const again = await api.request<{ error: string }>('POST', '/v1/clients', { ...body, name: 'Other', email: body.email.toUpperCase() });
    expect(again).toMatchObject({ status: 409, body: { error: 'Conflict' } });
    expect(await redis.scard(registryKeys.clientIds)).toBe(before);
  });

  it('issues tokens for the right password only', async () => {
    const created = await api.createClient();
    const ok = await anonymous.request<{ clientId: string; token: string }>('POST', '/v1/tokens', { email: created.email, password: created.password });
    expect(ok).toMatchObject({ status: 200, body: { clientId: created.clientId, channel: created.channel } });
    expect(await anonymous.request('POST', '/v1/tokens', { email: created.email, password: 'wrong password' })).toMatchObject({
      status: 401,
      body: { error: 'Unauthorized', message: 'wrong email or password' },
    });
    expect((await anonymous.request('POST', '/v1/tokens', { email: 'nobody@example.test', password: 'whatever1' })).status).toBe(401);
  });

  it('answers unknown routes and methods with 404 and a reason', async () => {
    expect(await api.request('GET', '/v2/nothing')).toMatchObject({ status: 404, body: { error: 'NotFound', message: 'no route for GET /v2/nothing' } });
    expect((await api.request('DELETE', '/v1/create-channel-client')).status).toBe(404);
  });

  it('guards admin routes with the API key, checked before the body is validated', async () => {
    expect(await anonymous.request('GET', '/v1/clients')).toMatchObject({ status: 401, body: { error: 'Unauthorized' } });
    expect(await anonymous.request('PUT', '/v1/bridges/x', {})).toMatchObject({ status: 401, body: { error: 'Unauthorized' } });
    expect((await api.request('PUT', '/v1/bridges/x', {})).status).toBe(400);
    const wrong = new PublisherApi(api.base, 'x'.repeat(devSecrets.SOCKETBRIDGE_API_KEY!.length));
    expect((await wrong.request('POST', '/v1/publish', { channel: 'broadcast', data: 1 })).status).toBe(401);
    const listed = await api.request<{ clients: Array<{ email: string; passwordHash?: string }> }>('GET', '/v1/clients?limit=1000');
    expect(listed.status).toBe(200);
    expect(listed.body.clients.length).toBeGreaterThan(0);
    expect(listed.body.clients.every((c) => c.passwordHash === undefined)).toBe(true);
    expect((await api.request('GET', '/v1/clients?limit=0')).status).toBe(400);
  });

  it('validates bridges: schema first, then what a schema cannot say', async () => {
    const bridge = {
      queues: [{ name: 'rest-bridge-q', bindings: [{ exchange: 'market', type: 'topic', routingKey: 'price.#' }], route: { channel: 'prices.{body.symbol}' } }],
      channels: [{ pattern: 'prices.*', access: 'public', history: { size: 100, ttlSeconds: 300 } }],
    };
    const put = await api.request<{ name: string; queues: Array<{ durable: boolean }> }>('PUT', '/v1/bridges/rest-bridge', bridge);
    expect(put.status).toBe(200);
    expect(put.body.queues[0]!.durable).toBe(true); // schema default
    const problems = await api.request<{ message: string }>('PUT', '/v1/bridges/rest-broken', {
      queues: [bridge.queues[0], { ...bridge.queues[0], route: { channel: 'prices.{payload.symbol}' } }],
      channels: [{ pattern: 'client.*', access: 'owner' }],
    });
    expect(problems.status).toBe(400);
    expect(problems.body.message).toContain('queue rest-bridge-q is declared twice');
    expect(problems.body.message).toContain('names {payload.symbol}');
    expect(problems.body.message).toContain('owner access needs a {clientId} segment');
    expect((await api.request('PUT', '/v1/bridges/Not_A_Name', bridge)).status).toBe(400);
    expect((await api.request('GET', '/v1/bridges/rest-broken')).status).toBe(404);
    expect((await api.request('DELETE', '/v1/bridges/rest-bridge')).status).toBe(204);
    expect((await api.request('DELETE', '/v1/bridges/rest-bridge')).status).toBe(404);
  });

  it('refuses what the operator refuses: amq.* queues, a pattern declared twice, one exchange with two types', async () => {
    const queue = { name: 'rest-rules-q', bindings: [{ exchange: 'rest-rules', type: 'topic', routingKey: 'a.#' }], route: { channel: 'rules.{routingKey}' } };
    const refused = [
      [{ queues: [{ ...queue, name: 'amq.rest-rules' }], channels: [] }, 'queue amq.rest-rules: names starting with amq. are reserved by RabbitMQ'],
      [{ queues: [queue], channels: [{ pattern: 'rules.*', access: 'public' }, { pattern: 'rules.*', access: 'authenticated' }] }, 'channel pattern rules.* is declared twice'],
      [
        { queues: [queue, { ...queue, name: 'rest-rules-q2', bindings: [{ exchange: 'rest-rules', type: 'direct', routingKey: 'b' }] }], channels: [] },
        'exchange rest-rules is bound as topic and as direct; an exchange has one type',
      ],
    ] as const;
    for (const [body, reason] of refused) {
      const answer = await api.request<{ error: string; message: string }>('PUT', '/v1/bridges/rest-rules', body);
      expect(answer, reason).toMatchObject({ status: 400, body: { error: 'BadRequest', message: expect.stringContaining(reason) } });
    }
    expect((await api.request('GET', '/v1/bridges/rest-rules')).status).toBe(404);
  });

  it('answers 409 naming the owner for a bridge a SocketBridge resource owns, and leaves it as it was', async () => {
    const owned = { name: 'rest-owned', queues: [{ name: 'rest-owned-q', durable: true, singleActiveConsumer: false, bindings: [], route: { channel: 'owned.{routingKey}' } }], channels: [] };
    await redis.multi().hset(registryKeys.bridges, owned.name, JSON.stringify(owned)).hset(registryKeys.owners, owned.name, 'team-a/owned').exec();
    try {
      const body = { queues: [{ name: 'rest-hijack-q', bindings: [], route: { channel: 'hijacked.{routingKey}' } }], channels: [{ pattern: 'hijacked.*', access: 'public' }] };
      for (const [method, payload] of [['PUT', body], ['DELETE', undefined]] as const) {
        const answer = await api.request<{ error: string; message: string }>(method, `/v1/bridges/${owned.name}`, payload);
        expect(answer).toMatchObject({ status: 409, body: { error: 'Conflict', message: expect.stringContaining('owned by team-a/owned') } });
      }
      expect(JSON.parse((await redis.hget(registryKeys.bridges, owned.name))!)).toEqual(owned);
    } finally {
      await redis.multi().hdel(registryKeys.bridges, owned.name).hdel(registryKeys.owners, owned.name).exec();
    }
  });

  it('rate-limits sign-ups and sign-ins per client address, one budget for both', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 45; i++) {
      statuses.push((await anonymous.request('POST', '/v1/tokens', { email: 'nobody@example.test', password: 'whatever1' })).status);
    }
    expect(statuses).toContain(429);
    const limited = await anonymous.request<{ error: string }>('POST', '/v1/tokens', { email: 'nobody@example.test', password: 'whatever1' });
    expect(limited).toMatchObject({ status: 429, body: { error: 'TooManyRequests' } });
    // Sign-up spends the same budget (test/security.test.ts counts it across routes and replicas).
    expect((await anonymous.request('POST', '/v1/clients', good())).status).toBe(429);
  });
});
