// The two sides of the bench and what drives them: the bare `ws` baseline and the SocketBridge
// cluster (each optionally confined to a CPU with taskset), the load generator processes and the
// producer. Shared by the burst rounds (bench.ts) and the steady regimes (steady.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { AmqpProducer, LocalCluster, profileArgs, rabbitmqUrl, redisUrl, repoRoot, spawnNode, waitFor } from '@socketbridge/devkit';
import { cpuSeconds, histogramBuckets, histogramPercentile, infrastructure, pinToCpu, type InfraRole } from './proc.js';

const script = (name: string) => `${repoRoot}scripts/dist/bench/${name}.js`;
export const progress = (text: string) => process.stderr.write(`\r\x1b[K${text}`);

export interface Side {
  name: string;
  ports: number[];
  /** Server-side processes whose CPU and memory count, by role. */
  pids: () => Array<{ role: string; pid: number }>;
  exchange: string;
  /** The RabbitMQ node the producer publishes to (default: the machine's). */
  amqpUrl?: string;
  /** Paced rounds: messages the producer may have unconfirmed (default 0: it waits for each batch's confirms). */
  confirmWindow?: number;
  /** The RabbitMQ and Redis processes the side uses (default: the machine's single nodes). */
  infrastructure?: () => Array<{ role: InfraRole; pid: number }>;
  stop: () => Promise<void>;
}

/** What one load generator prints for `report` / `report histogram`. */
export interface LoadgenReport {
  deliveries: number;
  duplicates: number;
  misrouted: number;
  firstAt: number;
  lastAt: number;
  histogram: Array<[number, number]>;
  hop: Array<[number, number]>;
  gcPauseMs: number;
  gcMaxPauseMs: number;
  overflow: number;
  max: number | null;
  recovered: number;
  reconnects: number;
}

/** All of a side's load generators together. */
export interface Report {
  deliveries: number;
  duplicates: number;
  misrouted: number;
  recovered: number;
  reconnects: number;
  firstAt: number;
  lastAt: number;
  p50: number | null;
  p99: number | null;
  /** The load generators' garbage collection pauses: total (summed over them) and longest, ms. */
  gcPauseMs: number;
  gcMaxPauseMs: number;
  /** SocketBridge: from the publisher's receipt (the envelope's ts) to the client. */
  hopP50: number | null;
  hopP99: number | null;
  max: number | null;
}

/** Every load generator still running, killed if the bench exits early. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** One load generator process: commands on its stdin, JSON lines back on its stdout. */
class Loadgen {
  readonly child: ChildProcess;
  private readonly inbox: Array<Record<string, unknown>> = [];
  private stderr = '';

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ['--expose-gc', ...profileArgs(), script('loadgen')], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(this.child);
    this.child.once('exit', () => running.delete(this.child));
    // Whole lines, however the pipe splits them: a report with a histogram can be long.
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      try {
        this.inbox.push(JSON.parse(text) as Record<string, unknown>);
      } catch {
        // not a reply
      }
    });
    this.child.stdin!.on('error', () => undefined); // a load generator that died is reported by request()
    this.child.stderr!.on('data', (chunk: Buffer) => void (this.stderr = (this.stderr + chunk.toString()).slice(-4000)));
  }

  /** Sends `command` (if any) and takes the next line whose msg is `reply`. */
  async request(command: string | undefined, reply: string, timeoutMs: number): Promise<Record<string, unknown>> {
    if (command) this.child.stdin!.write(`${command}\n`);
    let line: Record<string, unknown> | undefined;
    await waitFor(
      () => {
        if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`a load generator exited:\n${this.stderr}`);
        const at = this.inbox.findIndex((l) => l.msg === reply);
        if (at >= 0) line = this.inbox.splice(at, 1)[0];
        return line !== undefined;
      },
      timeoutMs,
      `a load generator's ${reply}`,
      10,
    );
    return line!;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin!.write('exit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export type SbClient = 'library' | 'raw' | 'wire';

/** A side's clients split over `count` load generator processes, started, asked and stopped together. */
export class Loadgens {
  readonly procs: Loadgen[];

  /** `sbClient`: SocketBridge's clients are the client library, bare socketcluster-client (raw) or the wire protocol on ws. */
  constructor(kind: 'sb' | 'ws', ports: number[], clients: number, channels: string[], count: number, sbClient: SbClient = 'library') {
    this.procs = Array.from({ length: count }, (_, n) => {
      const first = Math.floor((clients * n) / count);
      const next = Math.floor((clients * (n + 1)) / count);
      return new Loadgen({
        BENCH_KIND: kind,
        BENCH_SB_CLIENT: sbClient,
        BENCH_PORTS: ports.join(','),
        BENCH_FIRST: String(first),
        BENCH_CLIENTS: String(next - first),
        BENCH_CHANNELS: channels.join(','),
      });
    });
  }

  async ready(timeoutMs: number): Promise<void> {
    await Promise.all(this.procs.map((p) => p.request(undefined, 'ready', timeoutMs)));
  }

  /** A new measurement window on every load generator (each collects its garbage before replying). */
  async reset(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.request('reset', 'reset', 30000)));
  }

  /** Counts summed over the load generators; percentiles from their merged histograms (with `histogram`). */
  async report(histogram = false): Promise<Report> {
    const parts = (await Promise.all(this.procs.map((p) => p.request(histogram ? 'report histogram' : 'report', 'report', 30000)))) as unknown as LoadgenReport[];
    const sum = (key: 'deliveries' | 'duplicates' | 'misrouted' | 'recovered' | 'reconnects' | 'overflow') => parts.reduce((total, part) => total + part[key], 0);
    const counts = new Uint32Array(histogramBuckets);
    for (const part of parts) for (const [bucket, count] of part.histogram) counts[bucket]! += count;
    const hop = new Uint32Array(histogramBuckets);
    for (const part of parts) for (const [bucket, count] of part.hop ?? []) hop[bucket]! += count;
    const maxes = parts.map((part) => part.max).filter((max) => max !== null);
    const max = maxes.length ? Math.max(...maxes) : null;
    const started = parts.map((part) => part.firstAt).filter((at) => at > 0);
    return {
      deliveries: sum('deliveries'),
      duplicates: sum('duplicates'),
      misrouted: sum('misrouted'),
      recovered: sum('recovered'),
      reconnects: sum('reconnects'),
      firstAt: started.length ? Math.min(...started) : 0,
      lastAt: Math.max(0, ...parts.map((part) => part.lastAt)),
      p50: histogram ? histogramPercentile(counts, sum('overflow'), max, 0.5) : null,
      p99: histogram ? histogramPercentile(counts, sum('overflow'), max, 0.99) : null,
      max,
      gcPauseMs: Math.round(parts.reduce((total, part) => total + part.gcPauseMs, 0)),
      gcMaxPauseMs: Math.round(Math.max(0, ...parts.map((part) => part.gcMaxPauseMs))),
      hopP50: histogramPercentile(hop, 0, null, 0.5),
      hopP99: histogramPercentile(hop, 0, null, 0.99),
    };
  }

  /** CPU seconds the load generators have used so far, together. */
  cpuSeconds(): number {
    return this.procs.reduce((total, p) => total + cpuSeconds(p.child.pid!), 0);
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}

/** How the producer identifies its messages: a unique AMQP messageId each, or none (`--message-id`). */
export type MessageIds = 'unique' | 'none';

/**
 * `messageIds`: see MessageIds (default unique); `amqpUrl`: the RabbitMQ node to publish to (default:
 * the machine's); `confirmWindow`: see Side.
 */
export async function produce(
  exchange: string,
  channels: string[],
  perChannel: number,
  rate: number,
  { messageIds = 'unique', amqpUrl, confirmWindow = 0 }: { messageIds?: MessageIds; amqpUrl?: string; confirmWindow?: number } = {},
): Promise<void> {
  const producer = spawnNode('producer', script('producer'), {
    ...(amqpUrl ? { SOCKETBRIDGE_RABBITMQ_URL: amqpUrl } : {}),
    BENCH_CONFIRM_WINDOW: String(confirmWindow),
    BENCH_EXCHANGE: exchange,
    BENCH_CHANNELS: channels.join(','),
    BENCH_PER_CHANNEL: String(perChannel),
    BENCH_RATE: String(rate),
    BENCH_RUN: randomUUID(),
    BENCH_MESSAGE_IDS: messageIds,
  });
  await producer.waitForLog((l) => l.msg === 'sent', 600000, 'the producer to finish');
}

/**
 * Waits for `expected` deliveries while the producer runs, and returns the load generators' report
 * once they are in, or once ten seconds passed with nothing new after the producer finished: what
 * is missing then is lost.
 */
export async function deliverAll(load: Loadgens, expected: number, producing: Promise<void>, onProgress: (deliveries: number) => void): Promise<Report> {
  let produced = false;
  const sending = producing.then(() => void (produced = true));
  let report = await load.report();
  const deadline = Date.now() + 300000;
  for (let stalled = 0; report.deliveries < expected && Date.now() < deadline && stalled < 20; ) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const previous = report.deliveries;
    report = await load.report();
    onProgress(report.deliveries);
    stalled = produced && report.deliveries === previous ? stalled + 1 : 0;
  }
  await sending;
  return load.report();
}

/** What the baseline keeps (`--baseline`): nothing (bare), or a Redis history append and a heartbeat per socket (history). */
export type BaselineKind = 'bare' | 'history';

export async function startBaseline(kind: BaselineKind = 'bare'): Promise<Side> {
  const id = randomUUID().slice(0, 8);
  const exchange = `bench-ws-${id}`;
  const server = spawnNode('ws-baseline', script('ws-baseline'), {
    BENCH_EXCHANGE: exchange,
    BENCH_QUEUE: `${exchange}.q`,
    ...(kind === 'history' ? { BENCH_BASELINE_HISTORY: '1', SOCKETBRIDGE_REDIS_URL: redisUrl() } : {}),
  });
  const line = await server.waitForLog((l) => l.msg === 'listening', 20000, 'the baseline to listen');
  return {
    // The load generators tell the sides apart by this name's start ('bare': the baseline's protocol).
    name: kind === 'history' ? 'bare ws baseline with history and heartbeats' : 'bare ws baseline',
    ports: [Number(line.port)],
    pids: () => [{ role: 'ws server', pid: server.child.pid! }],
    exchange,
    stop: async () => void (await server.stop()),
  };
}

/** `env` adds to every member's environment (e.g. SOCKETBRIDGE_PREFETCH for the publisher). */
export async function startSocketBridge(workers = 2, env: Record<string, string> = {}, name = 'SocketBridge cluster'): Promise<Side & { cluster: LocalCluster }> {
  const id = randomUUID().slice(0, 8);
  const exchange = `bench-sb-${id}`;
  const cluster = await LocalCluster.start({
    brokers: 2,
    workers,
    publishers: 1,
    // The services' own timers, as in production (the tests' fast ones resync the registry every second).
    timers: {},
    env: {
      SOCKETBRIDGE_EXCHANGE: exchange,
      SOCKETBRIDGE_QUEUE: `${exchange}.q`,
      SOCKETBRIDGE_DEAD_LETTER_EXCHANGE: `${exchange}.dlx`,
      SOCKETBRIDGE_DEAD_LETTER_QUEUE: `${exchange}.dead-letter`,
      SOCKETBRIDGE_PUBLIC_CHANNELS: 'bench.*',
      ...env,
    },
  });
  const members = () => [
    { role: 'state', list: [cluster.state] },
    { role: 'broker', list: cluster.brokers },
    { role: 'worker', list: cluster.workers },
    { role: 'publisher', list: cluster.publishers },
  ];
  return {
    name,
    cluster,
    ports: cluster.workers.map((w) => w.port),
    pids: () => members().flatMap(({ role, list }) => list.map((p) => ({ role, pid: p.child.pid! }))),
    exchange,
    // Profiling (DEVKIT_PROFILE): a graceful stop, so each service writes its CPU profile.
    stop: () => (process.env.DEVKIT_PROFILE ? cluster.shutdown() : cluster.stop()),
  };
}


/** The bench's exchanges and queues are durable (as the publisher declares them): remove them after. */
export async function removeTopology(exchange: string, amqpUrl?: string): Promise<void> {
  const amqp = await AmqpProducer.connect(amqpUrl);
  await amqp.deleteTopology({
    SOCKETBRIDGE_EXCHANGE: exchange,
    SOCKETBRIDGE_QUEUE: `${exchange}.q`,
    SOCKETBRIDGE_DEAD_LETTER_EXCHANGE: `${exchange}.dlx`,
    SOCKETBRIDGE_DEAD_LETTER_QUEUE: `${exchange}.dead-letter`,
  });
  await amqp.close();
}


/** A side's server processes by role, with the RabbitMQ and Redis it uses. */
export const serverProcesses = (side: Side) => [...side.pids(), ...(side.infrastructure ?? (() => infrastructure(rabbitmqUrl(), redisUrl())))()];

/** Confines every server process of the side (not RabbitMQ and Redis, which both sides share) to `cpu`. */
export function pinSide(side: Side, cpu: number): void {
  for (const { pid } of side.pids()) pinToCpu(pid, cpu);
}

export const round2 = (n: number) => Math.round(n * 100) / 100;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
