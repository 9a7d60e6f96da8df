// The publisher's REST defences (issue #12): admin auth before validation, one sign-in budget per
// client address across routes and replicas (in Redis), trustProxy, security headers, and the
// fake-data route behind the admin key. Two real publisher replicas on one Redis.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { chromium } from 'playwright-core';
import { AmqpProducer, LocalCluster, PublisherApi, killAll, rabbitNames, redisUrl } from '@socketbridge/devkit';
import { loadPublisherConfig } from '../src/config.js';

const CHROMIUM = '/usr/bin/chromium';
const BUDGET = 30;
const names = rabbitNames('pub-security');
// The budget's Redis keys of this file's own: no other test's attempts count here, and ours are removed.
const prefix = `test:sign-in:${randomUUID()}:`;
const redis = new Redis(redisUrl(), { lazyConnect: true });
let cluster: LocalCluster;
/** Replica 1: test mode on, trustProxy off. Replica 2: test mode off, trusts proxies on loopback. */
let plain: PublisherApi;
let proxied: PublisherApi;
let apiKey: string;

beforeAll(async () => {
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    publishers: 0,
    env: { ...names, SOCKETBRIDGE_AUTH_RATE_LIMIT: String(BUDGET), SOCKETBRIDGE_RATE_LIMIT_PREFIX: prefix },
  });
  await cluster.addPublisher({ SOCKETBRIDGE_TEST_MODE: 'true' });
  await cluster.addPublisher({ SOCKETBRIDGE_TEST_MODE: 'false', SOCKETBRIDGE_TRUST_PROXY: 'loopback' });
  await cluster.waitForMembers();
  apiKey = cluster.env.SOCKETBRIDGE_API_KEY!;
  plain = new PublisherApi(`http://127.0.0.1:${cluster.publishers[0]!.port}`);
  proxied = new PublisherApi(`http://127.0.0.1:${cluster.publishers[1]!.port}`);
  await redis.connect();
}, 120_000);

afterAll(async () => {
  await clearBudgets().catch(() => undefined);
  redis.disconnect();
  await cluster?.stop();
  await killAll();
  const producer = await AmqpProducer.connect();
  await producer.deleteTopology(names);
  await producer.close();
});

async function budgetKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  for (let round = 0; round < 1000; round++) {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
    if (cursor === '0') break;
  }
  return keys;
}
async function clearBudgets(): Promise<void> {
  const keys = await budgetKeys();
  if (keys.length) await redis.del(...keys);
}

/** The three routes that share the budget, with a body each (the budget counts attempts, valid or not). */
const signInRoutes: Array<[string, unknown]> = [
  ['/v1/tokens', { email: 'nobody@example.test', password: 'not the password' }],
  ['/v1/clients', {}],
  ['/v1/create-channel-client', { name: 'Eve', email: 'not an email', password: 'x' }],
];

async function attempt(api: PublisherApi, index: number, headers: Record<string, string> = {}) {
  const [path, body] = signInRoutes[index % signInRoutes.length]!;
  const response = await fetch(`${api.base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as { error: string };
  return { path, status: response.status, error: json.error, remaining: response.headers.get('x-ratelimit-remaining'), retryAfter: response.headers.get('retry-after') };
}

describe('admin routes authenticate before anything else', () => {
  const cases: Array<{ method: string; path: string; why: string; body?: string; type?: string; without: number }> = [
    // `without`: what the request answers with the key (validation, parsing, lookup), to show the 401 came first.
    { method: 'PUT', path: '/v1/bridges/x', why: 'an empty bridge', body: '{}', without: 400 },
    { method: 'PUT', path: '/v1/bridges/Not_A_Name', why: 'a bad name and body', body: '{"queues":7}', without: 400 },
    { method: 'POST', path: '/v1/publish', why: 'broken JSON', body: '{"channel":', without: 400 },
    { method: 'POST', path: '/v1/publish', why: 'a text/plain body', body: 'hello', type: 'text/plain', without: 415 },
    { method: 'POST', path: '/v1/publish', why: 'a 70 KiB body', body: JSON.stringify({ channel: 'broadcast', data: 'x'.repeat(70 * 1024) }), without: 413 },
    { method: 'GET', path: '/v1/clients?limit=0', why: 'a bad query', without: 400 },
    { method: 'GET', path: `/v1/clients/${'x'.repeat(65)}`, why: 'a bad parameter', without: 400 },
    { method: 'DELETE', path: '/v1/bridges/no-such-bridge', why: 'an unknown bridge', without: 404 },
    { method: 'GET', path: '/v1/channels/a%20b', why: 'a bad channel name', without: 400 },
    { method: 'GET', path: '/v1/channels/broadcast/presence', why: 'a channel without presence', without: 404 },
    { method: 'POST', path: '/v1/console/token', why: 'an empty channel', body: '{"channel":""}', without: 400 },
    { method: 'GET', path: '/console/api/cluster', why: 'the console', without: 200 },
  ];

  it.each(cases)('$method $path, $why: 401 without the key or with a wrong one, $without with it', async ({ method, path, body, type, without }) => {
    const send = (key?: string) =>
      fetch(`${plain.base}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': type ?? 'application/json' }), ...(key === undefined ? {} : { 'x-api-key': key }) },
        body,
      });
    for (const key of [undefined, '', 'x'.repeat(apiKey.length), `${apiKey}x`, apiKey.slice(0, -1)]) {
      const response = await send(key);
      expect(response.status, `key ${JSON.stringify(key)}`).toBe(401);
      expect(await response.json()).toEqual({ error: 'Unauthorized', message: 'admin routes need a valid x-api-key header' });
    }
    expect((await send(apiKey)).status).toBe(without);
  });

  it('HEAD of an admin GET route, which Fastify adds itself, is guarded too', async () => {
    for (const path of ['/v1/clients', '/v1/bridges', '/v1/channels', '/console/api/cluster']) {
      expect((await fetch(`${plain.base}${path}`, { method: 'HEAD' })).status, path).toBe(401);
      expect((await fetch(`${plain.base}${path}`, { method: 'HEAD', headers: { 'x-api-key': apiKey } })).status, path).toBe(200);
    }
  });
});

describe('one sign-in budget per client address', () => {
  beforeEach(clearBudgets);

  it(`is shared by POST /v1/tokens, /v1/clients and /v1/create-channel-client: attempt ${BUDGET + 1} on any of them answers 429`, async () => {
    const first = [];
    for (let i = 0; i < BUDGET; i++) first.push(await attempt(plain, i));
    // Each route answered for itself (401, 400) and counted against the one budget.
    expect(first.filter((a) => a.status === 429)).toEqual([]);
    expect(new Set(first.map((a) => a.status))).toEqual(new Set([401, 400]));
    expect(first.map((a) => a.remaining)).toEqual(Array.from({ length: BUDGET }, (_, i) => String(BUDGET - 1 - i)));
    for (let i = 0; i < signInRoutes.length; i++) {
      expect(await attempt(plain, i)).toMatchObject({ status: 429, error: 'TooManyRequests', retryAfter: expect.stringMatching(/^\d+$/) });
    }
    // One counter, keyed by the address alone, in Redis.
    expect(await budgetKeys()).toEqual([`${prefix}127.0.0.1`]);
    expect(Number(await redis.get(`${prefix}127.0.0.1`))).toBe(BUDGET + signInRoutes.length);
    // Other routes are not limited by it.
    expect((await plain.request('GET', '/')).status).toBe(200);
  });

  it('is shared by two publisher replicas', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < BUDGET; i++) statuses.push((await attempt(i % 2 ? proxied : plain, i)).status);
    expect(statuses).not.toContain(429);
    expect((await attempt(plain, 0)).status).toBe(429);
    expect((await attempt(proxied, 1)).status).toBe(429);
  });

  it('with trustProxy, each X-Forwarded-For address has its own budget; without it, the header is ignored', async () => {
    const from = (address: string) => ({ 'x-forwarded-for': address });
    // The replica that trusts its loopback proxy: one address spends its budget, others keep theirs.
    for (let i = 0; i < BUDGET; i++) expect((await attempt(proxied, i, from('203.0.113.7'))).status).not.toBe(429);
    expect((await attempt(proxied, 0, from('203.0.113.7'))).status).toBe(429);
    expect(await attempt(proxied, 0, from('203.0.113.8'))).toMatchObject({ remaining: String(BUDGET - 1) });
    expect((await attempt(proxied, 0)).remaining).toBe(String(BUDGET - 1));
    expect((await budgetKeys()).sort()).toEqual([`${prefix}127.0.0.1`, `${prefix}203.0.113.7`, `${prefix}203.0.113.8`]);

    // The replica without trustProxy: a client inventing a new address per attempt still spends its own budget.
    await clearBudgets();
    for (let i = 0; i < BUDGET; i++) expect((await attempt(plain, i, from(`198.51.100.${i + 1}`))).status).not.toBe(429);
    expect((await attempt(plain, 0, from('198.51.100.200'))).status).toBe(429);
    expect(await budgetKeys()).toEqual([`${prefix}127.0.0.1`]);
  });
});

describe('SOCKETBRIDGE_TRUST_PROXY', () => {
  const secrets = { SOCKETBRIDGE_AUTH_KEY: 'k'.repeat(32), SOCKETBRIDGE_API_KEY: 'a'.repeat(16), SCC_AUTH_KEY: 's'.repeat(32), SOCKETBRIDGE_OPS_KEY: 'o'.repeat(32) };
  const trustProxy = (value?: string) => loadPublisherConfig({ ...secrets, SOCKETBRIDGE_TRUST_PROXY: value }).SOCKETBRIDGE_TRUST_PROXY;

  it('takes false (the default), true, or proxy addresses and CIDRs as Fastify does', () => {
    expect([trustProxy(), trustProxy(''), trustProxy('false'), trustProxy('true')]).toEqual([false, false, false, true]);
    expect(trustProxy('10.0.0.0/8, fd00::/8,192.0.2.1,loopback,10.1.0.0/255.255.0.0')).toEqual(['10.0.0.0/8', 'fd00::/8', '192.0.2.1', 'loopback', '10.1.0.0/255.255.0.0']);
  });

  it.each(['2', '10.0.0.0/33', 'fd00::/129', 'ingress', '10.0.0.1/8/8', ',', 'yes'])('refuses %j, naming the variable and the reason', (value) => {
    expect(() => trustProxy(value)).toThrow(/SOCKETBRIDGE_TRUST_PROXY: (a hop count is not supported|expected false, true or comma-separated proxy addresses)/);
  });
});

describe('security headers', () => {
  beforeEach(clearBudgets);

  it('on API answers, errors included: nosniff, no framing, a CSP that allows nothing', async () => {
    const answers = [
      await fetch(`${plain.base}/`),
      await fetch(`${plain.base}/v1/bridges`),
      await fetch(`${plain.base}/v2/nothing`),
      await fetch(`${plain.base}/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' }),
      await fetch(`${plain.base}/docs/json`),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 401, 404, 400, 200]);
    for (const response of answers) {
      expect(response.headers.get('x-content-type-options'), response.url).toBe('nosniff');
      expect(response.headers.get('x-frame-options'), response.url).toBe('SAMEORIGIN');
      expect(response.headers.get('content-security-policy'), response.url).toMatch(/default-src 'none'/);
      expect(response.headers.get('content-security-policy'), response.url).toMatch(/frame-ancestors 'none'/);
      expect(response.headers.get('referrer-policy'), response.url).toBe('no-referrer');
    }
  });

  it('on /docs and /console: their own CSP, and both pages work under it in Chromium', { timeout: 90_000 }, async () => {
    const docs = await fetch(`${plain.base}/docs/static/index.html`);
    expect(docs.status).toBe(200);
    expect(docs.headers.get('content-security-policy')).toMatch(/default-src 'none'; .*script-src 'self'; style-src 'self' 'sha256-/);
    expect(docs.headers.get('content-security-policy')).not.toMatch(/unsafe/);
    expect(docs.headers.get('x-content-type-options')).toBe('nosniff');
    const consolePage = await fetch(`${plain.base}/console`, { headers: { 'x-api-key': apiKey } });
    expect(consolePage.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(consolePage.headers.get('x-content-type-options')).toBe('nosniff');

    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`).toBe(true);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      page.on('console', (message) => {
        if (/Content Security Policy/i.test(message.text())) problems.push(`${page.url()}: ${message.text()}`);
      });
      await page.goto(`${plain.base}/docs`);
      // Swagger UI rendered the OpenAPI document it fetched: the title and the routes.
      await page.locator('.swagger-ui .info .title', { hasText: 'SocketBridge publisher' }).waitFor({ timeout: 20000 });
      await page.locator('.opblock-summary-path', { hasText: '/v1/tokens' }).first().waitFor({ timeout: 10000 });
      // Without the key: the key form (its own page, styled from a file), which opens the console.
      await page.goto(`${plain.base}/console`);
      await page.fill('input[name="key"]', apiKey);
      await page.click('form button');
      await page.locator('.member[data-kind="worker"]').first().waitFor({ timeout: 20000 });
      expect(page.url()).toBe(`${plain.base}/console`);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});

describe('the seed fake-data route', () => {
  it('in test mode: refused without the admin key, publishes with it (owner channels included)', async () => {
    const path = '/v1/publish-data-over-ch?channel=client.someone&count=2';
    expect(await plain.request('GET', path)).toMatchObject({ status: 401, body: { error: 'Unauthorized' } });
    expect((await plain.request('GET', path, undefined, { 'x-api-key': 'x'.repeat(apiKey.length) })).status).toBe(401);
    const published = await plain.request<{ published: number; channel: string }>('GET', path, undefined, { 'x-api-key': apiKey });
    expect(published).toMatchObject({ status: 200, body: { published: 2, channel: 'client.someone' } });
  });

  it('with test mode off: 404, with the key or without', async () => {
    for (const headers of [{}, { 'x-api-key': apiKey }] as Array<Record<string, string>>) {
      expect(await proxied.request('GET', '/v1/publish-data-over-ch?channel=broadcast&count=1', undefined, headers)).toMatchObject({
        status: 404,
        body: { error: 'NotFound', message: 'no route for GET /v1/publish-data-over-ch' },
      });
    }
  });
});
