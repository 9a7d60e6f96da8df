#!/usr/bin/env node
// `npm run bench`: SocketBridge against a bare `ws` baseline on the same RabbitMQ queue feed, the
// same producer and the same client load generator (separate processes, not counted as server).
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { AmqpProducer, LocalCluster, ManagedProcess, repoRoot, spawnNode, waitFor } from '@socketbridge/devkit';
import { cpuSeconds, infrastructurePids, rssBytes } from './proc.js';

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

interface Report {
  deliveries: number;
  recovered?: number;
  reconnects?: number;
  duplicates: number;
  firstAt: number;
  lastAt: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

function startLoadgen(kind: 'sb' | 'ws', ports: number[], clients: number, channels: string[]): ManagedProcess {
  const child = spawn(process.execPath, [script('loadgen')], {
    env: { ...process.env, BENCH_KIND: kind, BENCH_PORTS: ports.join(','), BENCH_CLIENTS: String(clients), BENCH_CHANNELS: channels.join(',') },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new ManagedProcess(`loadgen-${kind}`, child);
}

async function ask(loadgen: ManagedProcess): Promise<Report> {
  const before = loadgen.lines.filter((l) => l.msg === 'report').length;
  loadgen.child.stdin!.write('report\n');
  await waitFor(() => loadgen.lines.filter((l) => l.msg === 'report').length > before, 30000, 'a load generator report');
  return loadgen.lines.filter((l) => l.msg === 'report').at(-1) as unknown as Report;
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
    stop: () => cluster.stop(),
  };
}

interface SideResult {
  side: string;
  /** CPU seconds of the throughput run by role (RabbitMQ and Redis included). */
  cpuByRole: Record<string, number>;
  throughput: {
    messages: number;
    deliveries: number;
    expected: number;
    lost: number;
    duplicates: number;
    recovered: number;
    reconnects: number;
    seconds: number;
    deliveriesPerSecond: number;
    serverCpuSeconds: number;
    deliveriesPerCoreSecond: number;
  };
  latency: { rate: number; deliveries: number; lost: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null; loadgenCpuSeconds: number };
  rssMiB: number;
}

async function measure(side: Side, options: { clients: number; channels: string[]; perChannel: number; latencyRate: number; latencySeconds: number }): Promise<SideResult> {
  const { clients, channels, perChannel } = options;
  const receivers = clients / channels.length;
  const loadgen = startLoadgen(side.name.startsWith('bare') ? 'ws' : 'sb', side.ports, clients, channels);
  try {
    await loadgen.waitForLog((l) => l.msg === 'ready', 120000, 'every client to subscribe');
    // Throughput: as fast as the producer's confirms allow; counted until the last delivery.
    const serverPids = [...side.pids(), ...infrastructurePids().map((pid) => ({ role: 'rabbitmq+redis', pid }))];
    const before = new Map(serverPids.map(({ pid }) => [pid, cpuSeconds(pid)]));
    const expected = perChannel * channels.length * receivers;
    let produced = false;
    const sending = produce(side.exchange, channels, perChannel, 0).then(() => void (produced = true));
    let report = await ask(loadgen);
    const deadline = Date.now() + 300000;
    for (let stalled = 0; report.deliveries < expected && Date.now() < deadline && stalled < 10; ) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const before = report.deliveries;
      report = await ask(loadgen);
      progress(`${side.name}: ${report.deliveries.toLocaleString()} / ${expected.toLocaleString()} deliveries`);
      // Ten seconds with nothing new after the producer finished: what is missing is lost.
      stalled = produced && report.deliveries === before ? stalled + 1 : 0;
    }
    await sending;
    const cpuByRole: Record<string, number> = {};
    for (const { role, pid } of serverPids) {
      cpuByRole[role] = Math.round(((cpuByRole[role] ?? 0) + cpuSeconds(pid) - (before.get(pid) ?? 0)) * 100) / 100;
    }
    const seconds = (report.lastAt - report.firstAt) / 1000;
    const serverCpuSeconds = Object.values(cpuByRole).reduce((a, b) => a + b, 0);
    const throughput = {
      messages: perChannel * channels.length,
      deliveries: report.deliveries,
      expected,
      lost: expected - report.deliveries,
      duplicates: report.duplicates,
      recovered: report.recovered ?? 0,
      reconnects: report.reconnects ?? 0,
      seconds,
      deliveriesPerSecond: Math.round(report.deliveries / seconds),
      serverCpuSeconds: Math.round(serverCpuSeconds * 100) / 100,
      deliveriesPerCoreSecond: Math.round(report.deliveries / serverCpuSeconds),
    };

    // Latency at a fixed moderate rate.
    loadgen.child.stdin!.write('reset\n');
    // The load generator's own CPU in the latency run: when it nears a core, its queueing is in the latency.
    const loadgenBefore = cpuSeconds(loadgen.child.pid!);
    const latencyPerChannel = Math.round((options.latencyRate * options.latencySeconds) / channels.length);
    await produce(side.exchange, channels.map((c) => c), latencyPerChannel, options.latencyRate);
    const latencyExpected = latencyPerChannel * channels.length * receivers;
    await waitFor(async () => (await ask(loadgen)).deliveries >= latencyExpected, 30000, 'the latency run to be delivered').catch(() => undefined);
    const lat = await ask(loadgen);
    const loadgenCpuSeconds = Math.round((cpuSeconds(loadgen.child.pid!) - loadgenBefore) * 100) / 100;
    progress('');
    return {
      side: side.name,
      cpuByRole,
      throughput,
      latency: {
        rate: options.latencyRate,
        deliveries: lat.deliveries,
        lost: latencyExpected - lat.deliveries,
        p50Ms: lat.p50,
        p99Ms: lat.p99,
        maxMs: lat.max,
        loadgenCpuSeconds,
      },
      rssMiB: Math.round(side.pids().reduce((sum, { pid }) => sum + rssBytes(pid), 0) / 1048576),
    };
  } finally {
    loadgen.child.stdin!.write('exit\n');
    await loadgen.stop('SIGTERM', 5000);
  }
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

async function idleCost(connections: number): Promise<{ connections: number; rssBeforeMiB: number; rssAfterMiB: number; bytesPerConnection: number }> {
  const side = await startSocketBridge(1);
  const worker = side.cluster.workers[0]!;
  try {
    const before = rssBytes(worker.child.pid!);
    const loadgen = startLoadgen('sb', [worker.port], connections, Array.from({ length: 10 }, (_, i) => `bench.idle-${i}`));
    await loadgen.waitForLog((l) => l.msg === 'ready', 300000, `${connections} clients to subscribe`);
    await new Promise((resolve) => setTimeout(resolve, 3000)); // let the worker's heap settle before reading RSS
    const after = rssBytes(worker.child.pid!);
    loadgen.child.stdin!.write('exit\n');
    await loadgen.stop('SIGTERM', 10000);
    return {
      connections,
      rssBeforeMiB: Math.round(before / 1048576),
      rssAfterMiB: Math.round(after / 1048576),
      bytesPerConnection: Math.round((after - before) / connections),
    };
  } finally {
    await side.stop();
    await removeTopology(side.exchange);
  }
}

const roles = (r: SideResult) => Object.entries(r.cpuByRole).map(([role, cpu]) => `${role} ${cpu}`).join(', ');

function markdown(results: SideResult[], options: { latencySeconds: number }, idle?: Awaited<ReturnType<typeof idleCost>>): string {
  const [base, sb] = results as [SideResult, SideResult];
  const ratio = (a: number, b: number) => (b ? (a / b).toFixed(2) : 'n/a');
  const lines = [
    `| | ${base.side} | ${sb.side} | ratio |`,
    '|---|---|---|---|',
    `| deliveries/s (max rate, ${base.throughput.messages} messages) | ${base.throughput.deliveriesPerSecond} | ${sb.throughput.deliveriesPerSecond} | ${ratio(sb.throughput.deliveriesPerSecond, base.throughput.deliveriesPerSecond)} |`,
    `| server CPU seconds | ${base.throughput.serverCpuSeconds} | ${sb.throughput.serverCpuSeconds} | |`,
    `| deliveries per server core-second | ${base.throughput.deliveriesPerCoreSecond} | ${sb.throughput.deliveriesPerCoreSecond} | ${ratio(sb.throughput.deliveriesPerCoreSecond, base.throughput.deliveriesPerCoreSecond)} |`,
    `| lost / duplicates | ${base.throughput.lost} / ${base.throughput.duplicates} | ${sb.throughput.lost} / ${sb.throughput.duplicates} | |`,
    `| client reconnects / messages recovered | – | ${sb.throughput.reconnects} / ${sb.throughput.recovered} | |`,
    `| latency p50 / p99 / max at ${base.latency.rate} msg/s (ms) | ${base.latency.p50Ms} / ${base.latency.p99Ms} / ${base.latency.maxMs} | ${sb.latency.p50Ms} / ${sb.latency.p99Ms} / ${sb.latency.maxMs} | p99 ${ratio(sb.latency.p99Ms ?? 0, base.latency.p99Ms ?? 0)} |`,
    `| latency run lost | ${base.latency.lost} | ${sb.latency.lost} | |`,
    `| load generator CPU seconds in the latency run (${options.latencySeconds} s) | ${base.latency.loadgenCpuSeconds} | ${sb.latency.loadgenCpuSeconds} | |`,
    `| server RSS (MiB) | ${base.rssMiB} | ${sb.rssMiB} | |`,
    `| CPU seconds by process | ${roles(base)} | ${roles(sb)} | |`,
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
      out: { type: 'string', default: 'bench-results' },
      /** SocketBridge's load generator: the client library (default) or bare socketcluster-client. */
      'sb-client': { type: 'string', default: 'library' },
    },
  });
  process.env.BENCH_SB_CLIENT = values['sb-client'];
  const channels = Array.from({ length: Number(values.channels) }, (_, i) => `bench.ch-${i}`);
  const options = {
    clients: Number(values.clients),
    channels,
    perChannel: Math.round(Number(values.messages) / channels.length),
    latencyRate: Number(values['latency-rate']),
    latencySeconds: Number(values['latency-seconds']),
  };
  const results: SideResult[] = [];
  for (const start of [startBaseline, startSocketBridge]) {
    const side = await start();
    try {
      progress(`${side.name}: connecting ${options.clients} clients`);
      results.push(await measure(side, options));
    } finally {
      await side.stop();
      await removeTopology(side.exchange);
    }
  }
  const idle = Number(values.idle) > 0 ? await idleCost(Number(values.idle)) : undefined;
  const table = markdown(results, options, idle);
  mkdirSync(values.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(`${values.out}/bench-${stamp}.json`, `${JSON.stringify({ options: { ...options, channels: channels.length }, results, idle }, null, 2)}\n`);
  writeFileSync(`${values.out}/bench-${stamp}.md`, `${table}\n`);
  process.stdout.write(`\n${table}\n\n(written to ${values.out}/bench-${stamp}.{json,md})\n`);
  process.exit(0);
}

// Ctrl-C: exit through 'exit', where devkit kills every process the run started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
void main();
