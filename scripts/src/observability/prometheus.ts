// A private Prometheus (Debian's `prometheus` binary) scraping a local cluster, for the dashboard
// test and the README screenshots.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnCommand, waitFor, type LocalCluster, type ManagedProcess } from '@socketbridge/devkit';

export const PROMETHEUS_INSTALL_HINT = 'Prometheus is not installed: apt-get install prometheus (Debian/Ubuntu; the binary must be on PATH as `prometheus`)';

/** The `prometheus` binary on PATH, or undefined. */
export function prometheusBinary(): string | undefined {
  try {
    const found = execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim();
    return found || undefined;
  } catch {
    return undefined;
  }
}

/** Scrape targets by job name: `state`, `broker`, `worker`, `publisher`, as `host:port`. */
export type ScrapeTargets = Record<string, string[]>;

export function clusterTargets(cluster: LocalCluster): ScrapeTargets {
  const hostPort = (p: ManagedProcess) => `127.0.0.1:${p.port}`;
  return {
    state: [hostPort(cluster.state)],
    broker: cluster.brokers.map(hostPort),
    worker: cluster.workers.map(hostPort),
    publisher: cluster.publishers.map(hostPort),
  };
}

/**
 * prometheus.yml for the targets; scraped every second so a test sees rates within seconds.
 * `opsKey` (SOCKETBRIDGE_OPS_KEY) goes out as `Authorization: Bearer`: /metrics answers 401 without it.
 */
export function scrapeConfig(targets: ScrapeTargets, intervalSeconds = 1, opsKey?: string): string {
  const lines = ['global:', `  scrape_interval: ${intervalSeconds}s`, `  scrape_timeout: ${intervalSeconds}s`, `  evaluation_interval: ${intervalSeconds}s`, 'scrape_configs:'];
  for (const [job, list] of Object.entries(targets)) {
    if (!list.length) continue;
    lines.push(`  - job_name: ${JSON.stringify(job)}`, '    metrics_path: /metrics');
    if (opsKey) lines.push('    authorization:', '      type: Bearer', `      credentials: ${JSON.stringify(opsKey)}`);
    lines.push('    static_configs:', `      - targets: [${list.map((t) => JSON.stringify(t)).join(', ')}]`);
  }
  return `${lines.join('\n')}\n`;
}

export interface QueryResult {
  resultType: string;
  result: Array<{ metric: Record<string, string>; value?: [number, string]; values?: Array<[number, string]> }>;
}

export class Prometheus {
  private constructor(
    readonly url: string,
    readonly process: ManagedProcess,
    private readonly dir: string,
  ) {}

  /** Starts Debian's prometheus on a free port with its own data folder; resolves once it is ready. */
  static async start(targets: ScrapeTargets, options: { intervalSeconds?: number; opsKey?: string | undefined } = {}): Promise<Prometheus> {
    const binary = prometheusBinary();
    if (!binary) throw new Error(PROMETHEUS_INSTALL_HINT);
    const dir = mkdtempSync(join(tmpdir(), 'socketbridge-prometheus-'));
    const config = join(dir, 'prometheus.yml');
    // Holds the ops key: readable by this user only.
    writeFileSync(config, scrapeConfig(targets, options.intervalSeconds ?? 1, options.opsKey), { mode: 0o600 });
    const port = await freePort();
    const child = spawnCommand('prometheus', binary, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ]);
    const prometheus = new Prometheus(`http://127.0.0.1:${port}`, child, dir);
    try {
      await waitFor(
        async () => {
          if (!child.running) throw new Error(`prometheus exited:\n${child.tail()}`);
          return (await fetch(`${prometheus.url}/-/ready`).catch(() => undefined))?.ok === true;
        },
        30000,
        'prometheus to be ready',
        100,
      );
    } catch (error) {
      await prometheus.stop();
      throw error;
    }
    return prometheus;
  }

  private async api<T>(path: string, params: Record<string, string>): Promise<T> {
    const response = await fetch(`${this.url}${path}?${new URLSearchParams(params)}`);
    const body = (await response.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.errorType ?? response.status}: ${body.error ?? ''}`);
    return body.data;
  }

  /** An instant query (`/api/v1/query`). */
  query(expr: string): Promise<QueryResult> {
    return this.api<QueryResult>('/api/v1/query', { query: expr });
  }

  /** A range query (`/api/v1/query_range`), `stepSeconds` apart over the last `seconds`. */
  queryRange(expr: string, seconds: number, stepSeconds = 1): Promise<QueryResult> {
    const end = Date.now() / 1000;
    return this.api<QueryResult>('/api/v1/query_range', { query: expr, start: String(end - seconds), end: String(end), step: String(stepSeconds) });
  }

  /** Every target's health as Prometheus last saw it. */
  async targets(): Promise<Array<{ job: string; instance: string; health: string; lastError: string }>> {
    const data = await this.api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> }>('/api/v1/targets', {});
    return data.activeTargets.map((t) => ({ job: t.labels.job ?? '', instance: t.labels.instance ?? '', health: t.health, lastError: t.lastError }));
  }

  async stop(): Promise<void> {
    await this.process.stop('SIGTERM', 5000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
