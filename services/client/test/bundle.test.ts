import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Envelope } from '@socketbridge/common';
import { LocalCluster, PublisherApi, devSecrets, killAll, rabbitNames, repoRoot, waitFor, AmqpProducer } from '@socketbridge/devkit';

const bundle = `${repoRoot}services/client/dist/browser/socketbridge-client.mjs`;
const names = rabbitNames('bundle');
let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await LocalCluster.start({ brokers: 1, workers: 1, publishers: 1, env: names });
});
afterAll(async () => {
  const producer = await AmqpProducer.connect();
  await producer.deleteTopology(names);
  await producer.close();
  await cluster.stop();
  await killAll();
});

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
    const api = new PublisherApi(`http://127.0.0.1:${cluster.publishers[0]!.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
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
