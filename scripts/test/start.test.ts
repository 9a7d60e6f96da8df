import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { freePort, getJson, killAll, redisUrl, repoRoot, upgradeOutcome, waitFor, type StateView } from '@socketbridge/devkit';

afterAll(async () => {
  await killAll();
  const redis = new Redis(startRedisUrl);
  await redis.flushdb();
  redis.disconnect();
});

// npm start applies the example bridges to its Redis: a database of its own (in the test run's
// Redis) keeps their channel policies away from the other test files, which share database 0.
const startRedisUrl = redisUrl(14);

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [`${repoRoot}scripts/dist/start.js`, ...args], {
    cwd: repoRoot,
    env: { ...process.env, SOCKETBRIDGE_REDIS_URL: startRedisUrl, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** The local addresses listening on `port`, from the kernel's own table (no traffic needed). */
function listeningAddresses(port: number): string[] {
  const found: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6 table on this kernel
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || !local) continue; // 0A: LISTEN
      const [hex, portHex] = local.split(':');
      if (parseInt(portHex ?? '', 16) !== port) continue;
      found.push(hex === '0100007F' ? '127.0.0.1' : hex === '00000000' ? '0.0.0.0' : /^0+$/.test(hex ?? '') ? '::' : hex!);
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it('brings up the cluster, prints where to connect, and stops every process on Ctrl-C', async () => {
    const [state, broker, worker, publisher] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const start = run([
      ...['--brokers', '1', '--workers', '1', '--publishers', '1'],
      ...['--state-port', String(state), '--broker-port', String(broker), '--worker-port', String(worker), '--publisher-port', String(publisher)],
    ]);
    try {
      await waitFor(() => start.output().includes('SocketBridge cluster ready'), 60000, 'the ready banner');
      expect(start.output()).toContain(`ws://127.0.0.1:${worker}/socketcluster/`);
      expect(start.output()).toMatch(/\[broker-1\]\s+INFO\s+joined the cluster/);
      // A fresh ops key per run, printed in the banner; /state answers 401 without it.
      const opsKey = /ops key: +(\S+)/.exec(start.output())?.[1];
      expect(opsKey).toMatch(/^[0-9a-f]{32,}$/);
      expect((await fetch(`http://127.0.0.1:${state}/state`)).status).toBe(401);
      const view = await getJson<StateView>(`http://127.0.0.1:${state}/state`, opsKey);
      // Every port on 127.0.0.1 only, and the cluster ports refuse a caller without the cluster key.
      for (const port of [state, broker, worker, publisher]) expect(listeningAddresses(port)).toEqual(['127.0.0.1']);
      for (const port of [state, broker]) expect(await upgradeOutcome(port, {})).toMatchObject({ status: 401, errorName: 'BadClusterAuthError' });
      expect(view.sccBrokerURIs).toEqual([`ws://127.0.0.1:${broker}`]);
      // The publisher joins like a worker.
      expect(view.sccWorkerURIs).toEqual([`ws://127.0.0.1:${publisher}`, `ws://127.0.0.1:${worker}`].sort());
      expect(start.output()).toContain(`publisher API:   http://127.0.0.1:${publisher}/`);
      const root = (await (await fetch(`http://127.0.0.1:${publisher}/`)).json()) as { status: string };
      expect(root.status).toBe('up');
      // The demo's fake-data route can write into any channel: it takes the admin key npm start printed.
      const fake = `http://127.0.0.1:${publisher}/v1/publish-data-over-ch?channel=broadcast&count=1`;
      expect((await fetch(fake)).status).toBe(401);
      const adminKey = /admin API key: +(\S+)/.exec(start.output())?.[1] ?? '';
      expect((await fetch(fake, { headers: { 'x-api-key': adminKey } })).status).toBe(200);
      const processes = /processes: +(.*)/.exec(start.output())?.[1] ?? '';
      const members = [...processes.matchAll(/=(\d+)/g)].map((m) => Number(m[1]));
      expect(members).toHaveLength(4);
      for (const pid of members) expect(alive(pid)).toBe(true);

      start.child.kill('SIGINT');
      expect(await start.exited).toBe(0);
      expect(start.output()).toContain('stopped.');
      for (const pid of new Set(members)) expect(alive(pid)).toBe(false);
      const order = ['[publisher-1]', '[broker-1]', '[state]'].map((name) =>
        start.output().split('\n').findIndex((line) => line.includes(name) && line.includes('draining')),
      );
      expect(order[0]).toBeLessThan(order[1]!);
      expect(order[1]).toBeLessThan(order[2]!);
    } finally {
      start.child.kill('SIGKILL');
    }
  });

  it('comes up at SOCKETBRIDGE_LOG_LEVEL=warn, showing no info lines, and warns of no deprecation', async () => {
    const [state, broker, worker, publisher] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const ports = ['--state-port', String(state), '--broker-port', String(broker), '--worker-port', String(worker), '--publisher-port', String(publisher)];
    const start = run(['--brokers', '1', '--workers', '1', '--publishers', '1', ...ports], { SOCKETBRIDGE_LOG_LEVEL: 'warn' });
    try {
      await waitFor(() => start.output().includes('SocketBridge cluster ready'), 60000, 'the ready banner');
      // npm start shows every line its members print: none at info means they really ran at warn,
      // and devkit learned their ports and readiness without a log line.
      expect(start.output()).not.toMatch(/\]\s+INFO\s/);
      // The banner came once every member's /readyz said so (the state server's says so after its start-up delay).
      for (const port of [broker, worker, publisher]) expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status, `port ${port}`).toBe(200);
      expect(start.output()).not.toMatch(/Deprecation|DeprecationWarning/);
      start.child.kill('SIGINT');
      expect(await start.exited).toBe(0);
    } finally {
      start.child.kill('SIGKILL');
    }
  });

  it('refuses bad flags with the usage', async () => {
    const bad = run(['--brokers', '0']);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain('--brokers must be a whole number from 1 to 32');
    const loud = run([], { SOCKETBRIDGE_LOG_LEVEL: 'loud' });
    expect(await loud.exited).toBe(2);
    expect(loud.output()).toContain('SOCKETBRIDGE_LOG_LEVEL must be one of');
  });
});
