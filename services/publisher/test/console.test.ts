// The web console at /console: its key check, the topology and token routes, and the page itself
// in Debian's Chromium (playwright-core): it shows the cluster and tails a channel live.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { AmqpProducer, LocalCluster, PublisherApi, connectClient, killAll, rabbitNames, repoRoot, waitFor } from '@socketbridge/devkit';

const CHROMIUM = '/usr/bin/chromium';
const names = rabbitNames('console');
let cluster: LocalCluster;
let api: PublisherApi;
let base: string;
let producer: AmqpProducer;
let browser: Browser | undefined;

beforeAll(async () => {
  cluster = await LocalCluster.start({ brokers: 2, workers: 2, publishers: 1, env: names });
  base = `http://127.0.0.1:${cluster.publishers[0]!.port}`;
  api = new PublisherApi(base, cluster.env.SOCKETBRIDGE_API_KEY);
  producer = await AmqpProducer.connect();
}, 120_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await producer?.deleteTopology(names);
  await producer?.close();
  await cluster?.stop();
  await killAll();
});

interface Topology {
  state: { reachable: boolean; ready: boolean };
  brokers: Array<{ uri: string; reachable: boolean; connections: number }>;
  workers: Array<{ uri: string; reachable: boolean; connections: number }>;
  publishers: Array<{ self: boolean }>;
  tailUrl: string;
}

describe('the console routes', () => {
  it('the page wants the admin key, as x-api-key or ?key=, and sends no referrer', async () => {
    const anonymous = await fetch(`${base}/console`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toMatch(/admin API key/);
    expect((await fetch(`${base}/console?key=wrong`)).status).toBe(401);
    const byQuery = await fetch(`${base}/console?key=${cluster.env.SOCKETBRIDGE_API_KEY}`);
    expect(byQuery.status).toBe(200);
    expect(byQuery.headers.get('referrer-policy')).toBe('no-referrer');
    expect(byQuery.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    // The Vite build's page: one module script and one stylesheet, content-hashed, under /console/assets/.
    const assets = [...(await byQuery.text()).matchAll(/<(?:script type="module"|link rel="stylesheet")[^>]* (?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets).toEqual([expect.stringMatching(/^\/console\/assets\/console-[\w-]+\.js$/), expect.stringMatching(/^\/console\/assets\/console-[\w-]+\.css$/)]);
    const byHeader = await fetch(`${base}/console`, { headers: { 'x-api-key': cluster.env.SOCKETBRIDGE_API_KEY! } });
    expect(byHeader.status).toBe(200);
    // Code only, no secrets: the page's script and style load without the key, and are cached for good.
    for (const asset of assets) {
      const response = await fetch(`${base}${asset}`);
      expect(response.status, asset).toBe(200);
      expect(response.headers.get('cache-control'), asset).toMatch(/immutable/);
      expect(response.headers.get('content-type'), asset).toMatch(asset.endsWith('.js') ? /javascript/ : /text\/css/);
    }
    expect((await fetch(`${base}/console/assets/no-such-file.js`)).status).toBe(404);
  });

  it('GET /console/api/cluster: the state server, 2 brokers, 2 workers with their connections, and this publisher', async () => {
    expect((await new PublisherApi(base).request('GET', '/console/api/cluster')).status).toBe(401);
    const socket = await connectClient(cluster.workers[0]!.port);
    try {
      const { status, body } = await api.request<Topology>('GET', '/console/api/cluster');
      expect(status).toBe(200);
      expect(body.state).toMatchObject({ reachable: true, ready: true });
      expect(body.brokers.map((b) => b.uri).sort()).toEqual(cluster.brokers.map((b) => `ws://127.0.0.1:${b.port}`).sort());
      expect(body.brokers.every((b) => b.reachable && b.connections >= 3)).toBe(true);
      expect(body.workers.map((w) => w.uri).sort()).toEqual(cluster.workers.map((w) => `ws://127.0.0.1:${w.port}`).sort());
      const first = body.workers.find((w) => w.uri.endsWith(`:${cluster.workers[0]!.port}`))!;
      expect(first.connections).toBe(1);
      expect(body.publishers).toEqual([expect.objectContaining({ self: true })]);
      expect(body.tailUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      socket.disconnect();
    }
  });

  it('POST /v1/console/token: admin only, a real channel name, a token for exactly that channel', async () => {
    expect((await new PublisherApi(base).request('POST', '/v1/console/token', { channel: 'broadcast' })).status).toBe(401);
    expect((await api.request('POST', '/v1/console/token', { channel: 'no spaces' })).status).toBe(400);
    expect((await api.request('POST', '/v1/console/token', { channel: 'x', extra: 1 })).status).toBe(400);
    const owner = await api.createClient();
    const { status, body } = await api.request<{ token: string; channel: string }>('POST', '/v1/console/token', { channel: owner.channel });
    expect(status).toBe(200);
    expect(body.channel).toBe(owner.channel);
    const socket = await connectClient(cluster.workers[1]!.port, { token: body.token });
    try {
      const allowed = socket.subscribe(owner.channel);
      await allowed.listener('subscribe').once();
      const other = await api.createClient();
      const refused = socket.subscribe(other.channel);
      const { error } = await refused.listener('subscribeFail').once();
      expect(error.message).toMatch(/another client/);
    } finally {
      socket.disconnect();
    }
  });
});

describe('the console in Chromium', () => {
  it('shows 2 brokers and 2 workers, and a RabbitMQ message appears in the channel tail', { timeout: 90_000 }, async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`).toBe(true);
    // playwright-core gives the browser a fresh temporary profile of its own.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    // Every request the page makes finds what it asks for (a browser's own favicon request included).
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
    });
    await page.goto(`${base}/console?key=${cluster.env.SOCKETBRIDGE_API_KEY}`);
    // The key leaves the address bar at once; the page keeps it in memory.
    expect(page.url()).toBe(`${base}/console`);
    await page.locator('.member[data-kind="worker"]').nth(1).waitFor({ timeout: 20000 });
    expect(await page.locator('.member[data-kind="broker"]').count()).toBe(2);
    expect(await page.locator('.member[data-kind="worker"]').count()).toBe(2);
    await page.locator(`#bridges tr[data-queue="${names.SOCKETBRIDGE_QUEUE}"]`).waitFor({ timeout: 10000 });

    const channel = `console-test.${Date.now()}`;
    await page.fill('#tail-channel', channel);
    await page.click('#tail-start');
    await page.locator(`#tail[data-channel="${channel}"]`).waitFor({ state: 'attached', timeout: 20000 });
    await producer.publish(names.SOCKETBRIDGE_EXCHANGE, channel, { hello: 'console', n: 42 });
    await page.locator('#tail li.msg', { hasText: '"hello":"console"' }).waitFor({ timeout: 20000 });
    // The tail socket counts on its worker: the cluster view catches up within a refresh or two.
    await waitFor(async () => (await page.locator('.member[data-kind="worker"] [data-stat="connections"] b').allTextContents()).sort().join() === '0,1', 10000, 'the tail socket in the worker counts', 200);

    const outputDir = join(repoRoot, 'test-output');
    mkdirSync(outputDir, { recursive: true });
    await page.screenshot({ path: join(outputDir, 'console.png'), fullPage: true });
    expect(problems).toEqual([]);
  });
});
