import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, killAll, spawnCommand, waitFor } from '@socketbridge/devkit';
import { checkRedis } from '../src/preflight.js';

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
