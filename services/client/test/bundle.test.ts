import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Envelope } from '@socketbridge/common';
import { repoRoot, startPublisherTestbed, waitFor, type PublisherTestbed } from '@socketbridge/devkit';

const bundle = `${repoRoot}services/client/dist/browser/socketbridge-client.mjs`;
let testbed: PublisherTestbed;

beforeAll(async () => {
  testbed = await startPublisherTestbed('bundle');
});
afterAll(() => testbed.teardown());

describe('the browser bundle', () => {
  it('carries socketcluster-client with the browser WebSocket, not Node modules', () => {
    const code = readFileSync(bundle, 'utf8');
    expect(code).toContain('SocketBridgeClient');
    expect(code).not.toMatch(/require\(["'](ws|net|tls|http)["']\)/);
    expect(readFileSync(`${repoRoot}services/client/dist/browser/socketbridge-client.js`, 'utf8')).toMatch(/var SocketBridge\s*=/);
  });

  it('signs in, subscribes and receives, given only a window with a WebSocket, as a browser has', async () => {
    Object.assign(globalThis, { window: globalThis, WebSocket });
    const { SocketBridgeClient } = (await import(bundle)) as typeof import('../src/index.js');
    const { api, cluster } = testbed;
    const created = await api.createClient('Browser');
    const client = new SocketBridgeClient({ port: cluster.workers[0]!.port, token: created.token });
    await client.connected();
    const received: Envelope[] = [];
    await client.subscribe(created.channel, { onMessage: (envelope) => received.push(envelope) });
    expect((await api.request('POST', '/v1/publish', { channel: created.channel, data: { hello: 'browser' } })).status).toBe(202);
    await waitFor(() => received.length === 1, 10000, 'the message');
    expect(received[0]).toMatchObject({ data: { hello: 'browser' } });
    client.close();
  });
});
