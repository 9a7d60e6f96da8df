#!/usr/bin/env node
// `npm run bench`: SocketBridge against a bare `ws` baseline on the same RabbitMQ queue feed, the
// same producer and the same client load generators (separate processes, not counted as server).
// Both sides stay up with their clients connected; max-rate rounds alternate between them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AmqpProducer, LocalCluster, profileArgs, repoRoot, spawnNode, waitFor } from '@socketbridge/devkit';
import { cpuSeconds, histogramBuckets, histogramPercentile, infrastructurePids, rssBytes } from './proc.js';

const script = (name: string) => `${repoRoot}scripts/dist/bench/${name}.js`;
const progress = (text: string) => process.stderr.write(`\r\x1b[K${text}`);

interface Side {
  name: string;
  ports: number[];
  /** Server-side processes whose CPU and memory count, by role. */
  pids: () => Array<{ role: string; pid: number }>;
  exchange: string;
  stop: () => Promise<void>;
}

/** What one load generator prints for `report` / `report histogram`. */
interface LoadgenReport {
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
interface Report {
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

type SbClient = 'library' | 'raw' | 'wire';

/** A side's clients split over `count` load generator processes, started, asked and stopped together. */
class Loadgens {
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

async function produce(exchange: string, channels: string[], perChannel: number, rate: number): Promise<void> {
  const producer = spawnNode('producer', script('producer'), {
    BENCH_EXCHANGE: exchange,
    BENCH_CHANNELS: channels.join(','),
    BENCH_PER_CHANNEL: String(perChannel),
    BENCH_RATE: String(rate),
    BENCH_RUN: randomUUID(),
  });
  await producer.waitForLog((l) => l.msg === 'sent', 600000, 'the producer to finish');
}

async function startBaseline(): Promise<Side> {
  const id = randomUUID().slice(0, 8);
  const exchange = `bench-ws-${id}`;
  const server = spawnNode('ws-baseline', script('ws-baseline'), { BENCH_EXCHANGE: exchange, BENCH_QUEUE: `${exchange}.q` });
  const line = await server.waitForLog((l) => l.msg === 'listening', 20000, 'the baseline to listen');
  return {
    name: 'bare ws baseline',
    ports: [Number(line.port)],
    pids: () => [{ role: 'ws server', pid: server.child.pid! }],
    exchange,
    stop: async () => void (await server.stop()),
  };
}

async function startSocketBridge(workers = 2): Promise<Side & { cluster: LocalCluster }> {
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
    },
  });
  const members = () => [
    { role: 'state', list: [cluster.state] },
    { role: 'broker', list: cluster.brokers },
    { role: 'worker', list: cluster.workers },
    { role: 'publisher', list: cluster.publishers },
  ];
  return {
    name: 'SocketBridge cluster',
    cluster,
    ports: cluster.workers.map((w) => w.port),
    pids: () => members().flatMap(({ role, list }) => list.map((p) => ({ role, pid: p.child.pid! }))),
    exchange,
    // Profiling (DEVKIT_PROFILE): a graceful stop, so each service writes its CPU profile.
    stop: () => (process.env.DEVKIT_PROFILE ? cluster.shutdown() : cluster.stop()),
  };
}

interface Options {
  clients: number;
  channels: string[];
  perChannel: number;
  latencyRate: number;
  latencySeconds: number;
  loadgens: number;
  rounds: number;
  latencyRounds: number;
  sbClient: SbClient;
}

/** One max-rate round of one side. */
interface Throughput {
  round: number;
  messages: number;
  deliveries: number;
  expected: number;
  lost: number;
  duplicates: number;
  misrouted: number;
  recovered: number;
  reconnects: number;
  seconds: number;
  deliveriesPerSecond: number;
  serverCpuSeconds: number;
  deliveriesPerCoreSecond: number;
  /** CPU seconds of the round by role (RabbitMQ and Redis included). */
  cpuByRole: Record<string, number>;
  loadgenCpuSeconds: number;
}

interface Latency {
  rate: number;
  deliveries: number;
  expected: number;
  lost: number;
  duplicates: number;
  misrouted: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  afterPublisherP50Ms: number | null;
  afterPublisherP99Ms: number | null;
  loadgenCpuSeconds: number;
  loadgenGcPauseMs: number;
  loadgenGcMaxPauseMs: number;
}

interface SideResult {
  side: string;
  /** One entry per round, in order. */
  throughput: Throughput[];
  /** With the side's own clients: the baseline's first latency round; SocketBridge's client library (or --sb-client). */
  latency: Latency;
  /** Latency rounds, alternating the sides, with clients as light as the baseline's (SocketBridge: the wire protocol on ws). */
  latencyRounds: Latency[];
  rssMiB: number;
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/** Messages as fast as the producer's confirms allow, counted from the first delivery to the last. */
async function throughputRound(side: Side, load: Loadgens, options: Options, round: number): Promise<Throughput> {
  const { channels, perChannel } = options;
  await load.reset();
  const serverPids = [...side.pids(), ...infrastructurePids().map((pid) => ({ role: 'rabbitmq+redis', pid }))];
  const before = new Map(serverPids.map(({ pid }) => [pid, cpuSeconds(pid)]));
  const loadgenBefore = load.cpuSeconds();
  const expected = perChannel * options.clients;
  let produced = false;
  const sending = produce(side.exchange, channels, perChannel, 0).then(() => void (produced = true));
  let report = await load.report();
  const deadline = Date.now() + 300000;
  for (let stalled = 0; report.deliveries < expected && Date.now() < deadline && stalled < 10; ) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const before = report.deliveries;
    report = await load.report();
    progress(`${side.name}, round ${round + 1} of ${options.rounds}: ${report.deliveries.toLocaleString()} / ${expected.toLocaleString()} deliveries`);
    // Ten seconds with nothing new after the producer finished: what is missing is lost.
    stalled = produced && report.deliveries === before ? stalled + 1 : 0;
  }
  await sending;
  report = await load.report();
  const cpuByRole: Record<string, number> = {};
  for (const { role, pid } of serverPids) cpuByRole[role] = round2((cpuByRole[role] ?? 0) + cpuSeconds(pid) - (before.get(pid) ?? 0));
  const seconds = (report.lastAt - report.firstAt) / 1000;
  const serverCpuSeconds = Object.values(cpuByRole).reduce((a, b) => a + b, 0);
  return {
    round: round + 1,
    messages: perChannel * channels.length,
    deliveries: report.deliveries,
    expected,
    lost: expected - report.deliveries,
    duplicates: report.duplicates,
    misrouted: report.misrouted,
    recovered: report.recovered,
    reconnects: report.reconnects,
    seconds,
    deliveriesPerSecond: Math.round(report.deliveries / seconds),
    serverCpuSeconds: round2(serverCpuSeconds),
    deliveriesPerCoreSecond: Math.round(report.deliveries / serverCpuSeconds),
    cpuByRole,
    loadgenCpuSeconds: round2(load.cpuSeconds() - loadgenBefore),
  };
}

/** Latency at a fixed moderate rate. */
async function latencyRun(side: Side, load: Loadgens, options: Options): Promise<Latency> {
  await load.reset();
  // The load generators' own CPU in the latency run: when it nears their cores, their queueing is in the latency.
  const loadgenBefore = load.cpuSeconds();
  const perChannel = Math.round((options.latencyRate * options.latencySeconds) / options.channels.length);
  progress(`${side.name}: latency at ${options.latencyRate} messages/s for ${options.latencySeconds} s`);
  await produce(side.exchange, options.channels, perChannel, options.latencyRate);
  const expected = perChannel * options.clients;
  await waitFor(async () => (await load.report()).deliveries >= expected, 30000, 'the latency run to be delivered', 200).catch(() => undefined);
  const report = await load.report(true);
  return {
    rate: options.latencyRate,
    deliveries: report.deliveries,
    expected,
    lost: expected - report.deliveries,
    duplicates: report.duplicates,
    misrouted: report.misrouted,
    p50Ms: report.p50,
    p99Ms: report.p99,
    maxMs: report.max,
    afterPublisherP50Ms: report.hopP50,
    afterPublisherP99Ms: report.hopP99,
    loadgenCpuSeconds: round2(load.cpuSeconds() - loadgenBefore),
    loadgenGcPauseMs: report.gcPauseMs,
    loadgenGcMaxPauseMs: report.gcMaxPauseMs,
  };
}

/** The bench's exchanges and queues are durable (as the publisher declares them): remove them after. */
async function removeTopology(exchange: string): Promise<void> {
  const amqp = await AmqpProducer.connect();
  await amqp.deleteTopology({
    SOCKETBRIDGE_EXCHANGE: exchange,
    SOCKETBRIDGE_QUEUE: `${exchange}.q`,
    SOCKETBRIDGE_DEAD_LETTER_EXCHANGE: `${exchange}.dlx`,
    SOCKETBRIDGE_DEAD_LETTER_QUEUE: `${exchange}.dead-letter`,
  });
  await amqp.close();
}

/** A process's RSS once two readings 500 ms apart differ by under 0.5 MiB (at most 10 s of readings). */
async function settledRss(pid: number): Promise<number> {
  let previous = rssBytes(pid);
  for (let reading = 0; reading < 20; reading++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = rssBytes(pid);
    if (Math.abs(now - previous) < 512 * 1024) return now;
    previous = now;
  }
  return previous;
}

async function idleCost(connections: number, loadgens: number): Promise<{ connections: number; rssBeforeMiB: number; rssAfterMiB: number; bytesPerConnection: number }> {
  const side = await startSocketBridge(1);
  const worker = side.cluster.workers[0]!;
  try {
    // A freshly started worker is still dropping start-up garbage: read its RSS once it holds still.
    const before = await settledRss(worker.child.pid!);
    progress(`idle cost: connecting ${connections} clients to one worker`);
    const load = new Loadgens('sb', [worker.port], connections, Array.from({ length: 10 }, (_, i) => `bench.idle-${i}`), loadgens);
    try {
      await load.ready(300000);
      const after = await settledRss(worker.child.pid!);
      return {
        connections,
        rssBeforeMiB: Math.round(before / 1048576),
        rssAfterMiB: Math.round(after / 1048576),
        bytesPerConnection: Math.round((after - before) / connections),
      };
    } finally {
      await load.stop();
    }
  } finally {
    progress('');
    await side.stop();
    await removeTopology(side.exchange);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** SocketBridge's deliveries per server core-second over the baseline's, for each round. */
const roundRatios = (base: SideResult, sb: SideResult) =>
  base.throughput.map((b, i) => round2(sb.throughput[i]!.deliveriesPerCoreSecond / b.deliveriesPerCoreSecond));

/** SocketBridge's p99 over the baseline's, for each latency round with equally light clients. */
const latencyRatios = (base: SideResult, sb: SideResult) =>
  base.latencyRounds.map((b, i) => round2((sb.latencyRounds[i]!.p99Ms ?? 0) / (b.p99Ms || Number.NaN)));

/** One latency run of SocketBridge's against the baseline's: latency, where it goes, and what the clients cost. */
function latencyRows(base: Latency, sb: Latency | undefined, clients: string, options: Options): string[] {
  if (!sb) return [];
  const ratio = base.p99Ms ? ((sb.p99Ms ?? 0) / base.p99Ms).toFixed(2) : 'n/a';
  const lat = (l: Latency) => `${l.p50Ms} / ${l.p99Ms} / ${l.maxMs}`;
  const lost = (l: Latency) => `${l.lost} / ${l.duplicates} / ${l.misrouted}`;
  const load = (l: Latency) => `${l.loadgenCpuSeconds} s; GC ${l.loadgenGcPauseMs} ms, longest ${l.loadgenGcMaxPauseMs} ms`;
  return [
    `| **latency at ${base.rate} msg/s, SocketBridge with ${clients}**: p50 / p99 / max (ms) | ${lat(base)} | ${lat(sb)} | p99 ${ratio} |`,
    `| of which after the publisher, p50 / p99 (ms) | – | ${sb.afterPublisherP50Ms} / ${sb.afterPublisherP99Ms} | |`,
    `| lost / duplicates / misrouted | ${lost(base)} | ${lost(sb)} | |`,
    `| load generators in the ${options.latencySeconds} s run (${options.loadgens} processes): CPU; GC pauses | ${load(base)} | ${load(sb)} | |`,
  ];
}

function markdown(results: SideResult[], options: Options, idle?: Awaited<ReturnType<typeof idleCost>>): string {
  const [base, sb] = results as [SideResult, SideResult];
  const each = (r: SideResult, f: (t: Throughput) => number) => r.throughput.map(f);
  const list = (r: SideResult, f: (t: Throughput) => number) => each(r, f).join(', ');
  const total = (r: SideResult, f: (t: Throughput) => number) => each(r, f).reduce((a, b) => a + b, 0);
  const losses = (r: SideResult) => `${total(r, (t) => t.lost)} / ${total(r, (t) => t.duplicates)} / ${total(r, (t) => t.misrouted)}`;
  const roles = (r: SideResult) => {
    const cpu: Record<string, number> = {};
    for (const t of r.throughput) for (const [role, seconds] of Object.entries(t.cpuByRole)) cpu[role] = round2((cpu[role] ?? 0) + seconds);
    return Object.entries(cpu).map(([role, seconds]) => `${role} ${seconds}`).join(', ');
  };
  const perCore = (t: Throughput) => t.deliveriesPerCoreSecond;
  const perSecond = (t: Throughput) => t.deliveriesPerSecond;
  const ratios = roundRatios(base, sb);
  const rounds = `${options.rounds} rounds, ${base.throughput[0]?.messages} messages each`;
  const latencyLosses = (r: SideResult) =>
    ['lost', 'duplicates', 'misrouted'].map((k) => r.latencyRounds.reduce((sum, l) => sum + l[k as 'lost' | 'duplicates' | 'misrouted'], 0)).join(' / ');
  // The latency round whose ratio is the median, for the detail rows.
  const byRatio = latencyRatios(base, sb).map((ratio, i) => ({ ratio, i })).sort((a, b) => a.ratio - b.ratio);
  const middle = byRatio[Math.floor(byRatio.length / 2)]?.i ?? 0;
  const lines = [
    `| | ${base.side} | ${sb.side} | ratio |`,
    '|---|---|---|---|',
    `| deliveries per server core-second, median (${rounds}; ratio: median of the rounds' ratios) | ${median(each(base, perCore))} | ${median(each(sb, perCore))} | ${median(ratios).toFixed(2)} |`,
    `| deliveries per server core-second, each round | ${list(base, perCore)} | ${list(sb, perCore)} | ${ratios.map((r) => r.toFixed(2)).join(', ')} |`,
    `| deliveries/s at max rate, each round | ${list(base, perSecond)} | ${list(sb, perSecond)} | |`,
    `| server CPU seconds, each round | ${list(base, (t) => t.serverCpuSeconds)} | ${list(sb, (t) => t.serverCpuSeconds)} | |`,
    `| lost / duplicates / misrouted, all rounds | ${losses(base)} | ${losses(sb)} | |`,
    `| client reconnects / messages recovered, all rounds | – | ${total(sb, (t) => t.reconnects)} / ${total(sb, (t) => t.recovered)} | |`,
    `| **latency p99 at ${options.latencyRate} msg/s, clients as light as the baseline's (SocketBridge: the wire protocol on ws), each of ${options.latencyRounds} alternating rounds** (ms) | ${base.latencyRounds.map((l) => l.p99Ms).join(', ')} | ${sb.latencyRounds.map((l) => l.p99Ms).join(', ')} | ${latencyRatios(base, sb).join(', ')}; **median ${median(latencyRatios(base, sb)).toFixed(2)}** |`,
    `| lost / duplicates / misrouted, all latency rounds | ${latencyLosses(base)} | ${latencyLosses(sb)} | |`,
    ...latencyRows(base.latencyRounds[middle]!, sb.latencyRounds[middle], `clients as light as the baseline's, the round with the median ratio`, options),
    ...latencyRows(base.latency, sb.latency, `the ${options.sbClient === 'library' ? 'client library (exactly once, recovery)' : `${options.sbClient} client`}`, options),
    `| server RSS (MiB) | ${base.rssMiB} | ${sb.rssMiB} | |`,
    `| CPU seconds by process, all rounds | ${roles(base)} | ${roles(sb)} | |`,
  ];
  if (idle) lines.push('', `Idle cost: ${idle.connections} subscribed connections on one worker: RSS ${idle.rssBeforeMiB} → ${idle.rssAfterMiB} MiB, ${(idle.bytesPerConnection / 1024).toFixed(1)} KiB per connection.`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '1000' },
      channels: { type: 'string', default: '10' },
      messages: { type: 'string', default: '10000' },
      'latency-rate': { type: 'string', default: '200' },
      'latency-seconds': { type: 'string', default: '10' },
      idle: { type: 'string', default: '10000' },
      /** Load generator processes per side; the clients are split over them. */
      loadgens: { type: 'string', default: '2' },
      /** Max-rate rounds, alternating baseline and SocketBridge. */
      rounds: { type: 'string', default: '2' },
      /** Latency rounds with equally light clients, alternating baseline and SocketBridge. */
      'latency-rounds': { type: 'string', default: '3' },
      out: { type: 'string', default: 'bench-results' },
      /** SocketBridge's load generator: the client library (default), bare socketcluster-client (raw) or the wire protocol on ws. */
      'sb-client': { type: 'string', default: 'library' },
    },
  });
  const sbClient = values['sb-client'] as SbClient;
  if (!['library', 'raw', 'wire'].includes(sbClient)) throw new Error('--sb-client must be library, raw or wire');
  const channels = Array.from({ length: Number(values.channels) }, (_, i) => `bench.ch-${i}`);
  const options: Options = {
    clients: Number(values.clients),
    channels,
    perChannel: Math.round(Number(values.messages) / channels.length),
    latencyRate: Number(values['latency-rate']),
    latencySeconds: Number(values['latency-seconds']),
    loadgens: Number(values.loadgens),
    rounds: Number(values.rounds),
    latencyRounds: Number(values['latency-rounds']),
    sbClient,
  };
  for (const key of ['clients', 'perChannel', 'loadgens', 'rounds', 'latencyRounds'] as const) {
    if (!Number.isInteger(options[key]) || options[key] < 1) throw new Error(`${key} must be a positive whole number`);
  }
  const sides: Array<{ side: Side; load: Loadgens; rounds: Throughput[] }> = [];
  const results: SideResult[] = [];
  try {
    for (const start of [startBaseline, startSocketBridge]) {
      const side = await start();
      const load = new Loadgens(side.name.startsWith('bare') ? 'ws' : 'sb', side.ports, options.clients, channels, options.loadgens, sbClient);
      sides.push({ side, load, rounds: [] });
      progress(`${side.name}: connecting ${options.clients} clients`);
      await load.ready(120000);
    }
    for (let round = 0; round < options.rounds; round++) {
      for (const { side, load, rounds } of sides) rounds.push(await throughputRound(side, load, options, round));
    }
    const [base, sb] = sides as [(typeof sides)[number], (typeof sides)[number]];
    // SocketBridge with the clients users run (the client library by default), once.
    const sbLatency = await latencyRun(sb.side, sb.load, options);
    if (sbClient !== 'wire') {
      // Then the servers compared: SocketBridge's clients as light as the baseline's.
      await sb.load.stop();
      sb.load = new Loadgens('sb', sb.side.ports, options.clients, channels, options.loadgens, 'wire');
      progress(`${sb.side.name}: connecting ${options.clients} wire-protocol clients`);
      await sb.load.ready(120000);
    }
    const baseRounds: Latency[] = [];
    const sbRounds: Latency[] = [];
    for (let round = 0; round < options.latencyRounds; round++) {
      baseRounds.push(await latencyRun(base.side, base.load, options));
      sbRounds.push(await latencyRun(sb.side, sb.load, options));
    }
    const rss = (side: Side) => Math.round(side.pids().reduce((sum, { pid }) => sum + rssBytes(pid), 0) / 1048576);
    results.push({ side: base.side.name, throughput: base.rounds, latency: baseRounds[0]!, latencyRounds: baseRounds, rssMiB: rss(base.side) });
    results.push({ side: sb.side.name, throughput: sb.rounds, latency: sbLatency, latencyRounds: sbRounds, rssMiB: rss(sb.side) });
  } finally {
    progress('');
    for (const { side, load } of sides) {
      await load.stop();
      await side.stop();
      await removeTopology(side.exchange);
    }
  }
  const idle = Number(values.idle) > 0 ? await idleCost(Number(values.idle), options.loadgens) : undefined;
  const table = markdown(results, options, idle);
  const ratios = roundRatios(results[0]!, results[1]!);
  mkdirSync(values.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const p99Ratios = latencyRatios(results[0]!, results[1]!);
  const json = { options: { ...options, channels: channels.length }, results, ratios, medianRatio: median(ratios), p99Ratios, medianP99Ratio: median(p99Ratios), idle };
  writeFileSync(`${values.out}/bench-${stamp}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${values.out}/bench-${stamp}.md`, `${table}\n`);
  process.stdout.write(`\n${table}\n\n(written to ${values.out}/bench-${stamp}.{json,md})\n`);
  process.exit(0);
}

// Ctrl-C: exit through 'exit', where devkit kills every process the run started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
void main();
