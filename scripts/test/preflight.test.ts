import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, killAll, spawnCommand, TestCa, waitFor } from '@socketbridge/devkit';
import { checkRabbitMQ, checkRedis } from '../src/preflight.js';
import { rabbitmqUrl } from '@socketbridge/devkit';

const dir = mkdtempSync(join(tmpdir(), 'socketbridge-preflight-'));
afterAll(async () => {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('npm start checks Redis behind Sentinel', () => {
  it('passes when one of the sentinels answers, and names each that did not otherwise', async () => {
    const [closed, port] = [await freePort(), await freePort()];
    const file = join(dir, 'sentinel.conf');
    writeFileSync(file, `port ${port}\nbind 127.0.0.1\ndir ${dir}\n`);
    const sentinel = spawnCommand('sentinel', 'redis-sentinel', [file]);
    await waitFor(() => sentinel.raw.some((line) => line.includes('Sentinel ID')), 10000, 'the sentinel to start');

    const up = await checkRedis(`redis+sentinel://127.0.0.1:${closed},127.0.0.1:${port}/m`);
    expect(up).toMatchObject({ ok: true, detail: `Sentinel at 127.0.0.1:${port} answered PING` });
    const down = await checkRedis(`redis+sentinel://127.0.0.1:${closed}/m`);
    expect(down.ok).toBe(false);
    expect(down.detail).toContain(`127.0.0.1:${closed}`);
    expect((await checkRedis('redis+sentinel://127.0.0.1:1')).detail).toMatch(/<masterName>/);
  });
});

describe('npm start checks Redis Cluster', () => {
  it('passes when one of the seed nodes answers PING, and names each that did not otherwise', async () => {
    const [closed, port] = [await freePort(), await freePort()];
    // One cluster-enabled node is enough: PING answers before the cluster is formed, as the check only asks "is a node there".
    const node = spawnCommand('cluster-node', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf')]);
    await waitFor(() => node.raw.some((line) => line.includes('Ready to accept connections')), 10000, 'the node to start');

    const up = await checkRedis(`redis+cluster://127.0.0.1:${closed},127.0.0.1:${port}`);
    expect(up).toMatchObject({ ok: true, detail: `Cluster node 127.0.0.1:${port} answered PING` });
    const down = await checkRedis(`redis+cluster://127.0.0.1:${closed}`);
    expect(down.ok).toBe(false);
    expect(down.detail).toContain(`no Cluster seed node answered (127.0.0.1:${closed}`);
    expect((await checkRedis('redis+cluster://127.0.0.1:1/3')).detail).toMatch(/database 0 only/);
  });
});

describe('npm start checks Redis over TLS', () => {
  it('speaks TLS to rediss://, rediss+sentinel:// and rediss+cluster:// addresses, verifying the certificate', async () => {
    const ca = TestCa.create();
    try {
      const port = await freePort();
      // A TLS-only server answers PING like a sentinel or a cluster seed would: the check asks only "is Redis there".
      const node = spawnCommand('tls-node', 'redis-server', ['--port', '0', '--tls-port', String(port), '--tls-cert-file', ca.certFile, '--tls-key-file', ca.keyFile, '--tls-ca-cert-file', ca.caFile, '--tls-auth-clients', 'no', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
      await waitFor(() => node.raw.some((line) => line.includes('Ready to accept connections')), 10000, 'the TLS node to start');
      const trusted = { ca: ca.ca };
      expect(await checkRedis(`rediss://127.0.0.1:${port}`, 2000, trusted)).toMatchObject({ ok: true, detail: 'PING answered' });
      expect(await checkRedis(`rediss+sentinel://127.0.0.1:${port}/m`, 2000, trusted)).toMatchObject({ ok: true, detail: `Sentinel at 127.0.0.1:${port} answered PING` });
      expect(await checkRedis(`rediss+cluster://127.0.0.1:${port}`, 2000, trusted)).toMatchObject({ ok: true, detail: `Cluster node 127.0.0.1:${port} answered PING` });
      // Node's defaults alone do not trust the test CA: refused, naming the certificate.
      const untrusted = await checkRedis(`rediss+cluster://127.0.0.1:${port}`);
      expect(untrusted.ok).toBe(false);
      expect(untrusted.detail).toMatch(/certificate/);
      // Plain TCP to the TLS port gets no PONG.
      expect((await checkRedis(`redis+cluster://127.0.0.1:${port}`)).ok).toBe(false);
    } finally {
      ca.remove();
    }
  });
});

describe('npm start checks RabbitMQ', () => {
  it('passes when one of the nodes of a comma-separated list answers AMQP, and names each that did not otherwise', async () => {
    const closed = await freePort();
    const node = new URL(rabbitmqUrl());
    const up = await checkRabbitMQ(`amqp://127.0.0.1:${closed},${node.href}`);
    expect(up).toMatchObject({ ok: true, detail: `AMQP 0-9-1 answers at ${node.hostname}:${node.port || 5672}` });
    const down = await checkRabbitMQ(`amqp://127.0.0.1:${closed},amqp://127.0.0.1:${closed}/v`);
    expect(down.ok).toBe(false);
    expect(down.detail).toContain(`no node answered (127.0.0.1:${closed}: `);
    expect((await checkRabbitMQ('amqp://a:5672,rabbit-b:5672')).detail).toContain('"rabbit-b:5672" is not an amqp:// or amqps:// URL');
  });
});
