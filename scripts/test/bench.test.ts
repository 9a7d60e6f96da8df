import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '@socketbridge/devkit';
import { createServer } from 'node:net';
import { bucketsPerMs, histogramBuckets, histogramPercentile, infrastructureOn } from '../src/bench/proc.js';
import { parseTopologies } from '../src/bench/topologies.js';

describe('the benchmark', () => {
  it('reads --topologies as variants of single-node parts, and refuses an unknown term', () => {
    expect(parseTopologies('rabbitmq-cluster+quorum,sentinel,redis-cluster+stream')).toEqual([
      { name: 'rabbitmq-cluster+quorum', rabbitmq: 'cluster', queueType: 'quorum', redis: 'single' },
      { name: 'sentinel', rabbitmq: 'single', queueType: 'classic', redis: 'sentinel' },
      { name: 'redis-cluster+stream', rabbitmq: 'single', queueType: 'stream', redis: 'cluster' },
    ]);
    expect(() => parseTopologies('quorum+mirrored')).toThrow(/mirrored is not one of/);
  });

  it("counts every process listening on a topology's ports, once each", async () => {
    // Two ports of this process: one entry; a port nothing listens on: none.
    const servers = [createServer(), createServer()];
    const ports = await Promise.all(servers.map((server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)))));
    try {
      expect(infrastructureOn({ rabbitmq: ports, redis: [1] })).toEqual([{ role: 'rabbitmq', pid: process.pid }]);
    } finally {
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    }
  });

  it('reads percentiles from its 0.1 ms histogram', () => {
    const counts = new Uint32Array(histogramBuckets);
    // 98 samples at 1.0 ms, one at 2.5 ms, one past the last bucket.
    counts[1 * bucketsPerMs] = 98;
    counts[2.5 * bucketsPerMs] = 1;
    expect(histogramPercentile(counts, 1, 61_000, 0.5)).toBe(1);
    expect(histogramPercentile(counts, 1, 61_000, 0.98)).toBe(2.5);
    expect(histogramPercentile(counts, 1, 61_000, 0.99)).toBe(61_000);
    expect(histogramPercentile(new Uint32Array(histogramBuckets), 0, null, 0.99)).toBeNull();
  });

  it('a small run of `npm run bench` measures both sides, loses nothing and writes its results', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-'));
    try {
      const args = ['--clients', '40', '--messages', '400', '--rounds', '1', '--latency-rounds', '1', '--latency-seconds', '1', '--idle', '1000', '--out', out];
      // The steady regimes, small: 40 per-client channels, fan-out over the 40 clients above.
      args.push('--per-client-channels', '40', '--per-client-rates', '100', '--per-client-max-messages', '200', '--fan-out-rates', '100', '--fan-out-max-messages', '200');
      args.push('--steady-seconds', '1', '--steady-rounds', '1', '--warmup-seconds', '1', '--warmup-rate', '200');
      // Cold start: a fresh cluster at 200 msg/s for 3 s.
      args.push('--cold-rate', '200', '--cold-seconds', '3');
      const child = spawn(process.execPath, [join(repoRoot, 'scripts/dist/bench/bench.js'), ...args], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      // The bench stops every process it started when it exits, also on SIGTERM.
      const timer = setTimeout(() => child.kill('SIGTERM'), 150_000);
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      clearTimeout(timer);
      expect(code, stderr.slice(-2000)).toBe(0);

      const file = readdirSync(out).find((name) => name.endsWith('.json'))!;
      const report = JSON.parse(readFileSync(join(out, file), 'utf8')) as {
        results: Array<{ side: string; throughput: Array<{ lost: number; duplicates: number; misrouted: number; deliveriesPerCoreSecond: number }>; latency: { lost: number; duplicates: number; p99Ms: number | null }; latencyRounds: Array<{ lost: number; duplicates: number }> }>;
        medianRatio: number;
        medianP99Ratio: number;
        idle: { connections: number; bytesPerConnection: number };
        cold: { rate: number; samples: Array<{ deliveries: number; cpuPerMessageUs: number; cpuPerMessageUsByRole: Record<string, number> }>; warmUs: number };
        regimes: Array<{
          regime: string;
          receiversPerMessage: number;
          rounds: Record<string, Array<{ rate: number; lost: number; duplicates: number; misrouted: number; deliveriesPerCoreSecond: number; cpuPerMessageUsByRole: Record<string, number>; p99Ms: number | null }>>;
          ratios: Array<{ rate: number; medianThroughput: number; medianP99: number }>;
        }>;
      };
      expect(report.results.map((r) => r.side)).toEqual(['bare ws baseline', 'SocketBridge cluster']);
      for (const side of report.results) {
        for (const round of side.throughput) expect(round, side.side).toMatchObject({ lost: 0, duplicates: 0, misrouted: 0 });
        expect(side.throughput[0]!.deliveriesPerCoreSecond).toBeGreaterThan(0);
        for (const run of [side.latency, ...side.latencyRounds]) expect(run, side.side).toMatchObject({ lost: 0, duplicates: 0 });
        expect(side.latency.p99Ms).toBeGreaterThan(0);
      }
      expect(report.medianRatio).toBeGreaterThan(0);
      expect(report.medianP99Ratio).toBeGreaterThan(0);
      expect(report.regimes.map((r) => [r.regime, r.receiversPerMessage])).toEqual([['per-client', 1], ['fan-out', 4]]);
      for (const regime of report.regimes) {
        expect(Object.keys(regime.rounds)).toEqual(['bare ws baseline', 'SocketBridge cluster']);
        // One paced round and one max-rate round per side, in that order, each counted by role.
        for (const rounds of Object.values(regime.rounds)) {
          expect(rounds.map((r) => r.rate), regime.regime).toEqual([100, 0]);
          for (const round of rounds) expect(round, regime.regime).toMatchObject({ lost: 0, duplicates: 0, misrouted: 0 });
          for (const round of rounds) expect(round.p99Ms, regime.regime).toBeGreaterThan(0);
        }
        expect(Object.keys(regime.rounds['SocketBridge cluster']![0]!.cpuPerMessageUsByRole).sort()).toEqual(['broker', 'publisher', 'rabbitmq', 'redis', 'state', 'worker']);
        expect(regime.ratios.map((r) => r.rate)).toEqual([100, 0]);
        for (const ratio of regime.ratios) expect(ratio.medianThroughput).toBeGreaterThan(0);
      }
      expect(report.cold.rate).toBe(200);
      expect(report.cold.samples.reduce((sum, s) => sum + s.deliveries, 0)).toBeGreaterThan(0);
      expect(Object.keys(report.cold.samples[0]!.cpuPerMessageUsByRole).sort()).toEqual(['broker', 'publisher', 'state', 'worker']);
      expect(report.cold.warmUs).toBeGreaterThan(0);
      expect(report.idle.connections).toBe(1000);
      expect(report.idle.bytesPerConnection).toBeGreaterThan(0);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});
