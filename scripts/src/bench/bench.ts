#!/usr/bin/env node
// `npm run bench`: SocketBridge against a bare `ws` baseline on the same RabbitMQ queue feed, the
// same producer and the same client load generators (separate processes, not counted as server).
// Both sides stay up (each confined to the same CPU with taskset unless --cpu none); max-rate
// rounds alternate between them, then the steady regimes (steady.ts) run on the same two sides.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { waitFor } from '@socketbridge/devkit';
import { cpuSeconds, rssBytes } from './proc.js';
import { Loadgens, deliverAll, median, pinSide, produce, progress, removeTopology, round2, serverProcesses, startBaseline, startSocketBridge, type BaselineKind, type MessageIds, type SbClient, type Side } from './sides.js';
import { coldMarkdown, coldStart, regimeMarkdown, regimeRatios, runRegime, type ColdStart, type Regime, type RegimeResult, type SteadyOptions } from './steady.js';
import { parseTopologies, runTopologies, topologiesMarkdown, topologySummary, type TopologyResult } from './topologies.js';

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
  messageIds: MessageIds;
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

/** Messages as fast as the producer's confirms allow, counted from the first delivery to the last. */
async function throughputRound(side: Side, load: Loadgens, options: Options, round: number): Promise<Throughput> {
  const { channels, perChannel } = options;
  await load.reset();
  const serverPids = serverProcesses(side);
  const before = new Map(serverPids.map(({ pid }) => [pid, cpuSeconds(pid)]));
  const loadgenBefore = load.cpuSeconds();
  const expected = perChannel * options.clients;
  const report = await deliverAll(load, expected, produce(side.exchange, channels, perChannel, 0, { messageIds: options.messageIds }), (got) =>
    progress(`${side.name}, round ${round + 1} of ${options.rounds}: ${got.toLocaleString()} / ${expected.toLocaleString()} deliveries`),
  );
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
  await produce(side.exchange, options.channels, perChannel, options.latencyRate, { messageIds: options.messageIds });
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

const idleLine = (idle: Awaited<ReturnType<typeof idleCost>>) =>
  `Idle cost: ${idle.connections} subscribed connections on one worker: RSS ${idle.rssBeforeMiB} → ${idle.rssAfterMiB} MiB, ${(idle.bytesPerConnection / 1024).toFixed(1)} KiB per connection.`;

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
  if (idle) lines.push('', idleLine(idle));
  return lines.join('\n');
}

const REGIMES = ['burst', 'per-client', 'fan-out', 'cold', 'topologies'] as const;
const numbers = (text: string) => text.split(',').filter(Boolean).map(Number);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      /** Which parts run: burst (max-rate rounds and latency, below), per-client and fan-out (steady.ts). */
      // Topologies only when asked: it starts a RabbitMQ cluster and Redis sets of its own.
      regimes: { type: 'string', default: REGIMES.filter((regime) => regime !== 'topologies').join(',') },
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
      /** The producer's AMQP messageId: unique per message, or none (SocketBridge then keeps ids for redeliveries itself). */
      'message-id': { type: 'string', default: 'unique' },
      /** The CPU both sides' server processes are confined to (taskset), one side at a time measured; `none`: not confined. */
      cpu: { type: 'string', default: '1' },
      /** Per-client regime: this many channels, one client each. */
      'per-client-channels': { type: 'string', default: '1000' },
      'per-client-rates': { type: 'string', default: '500,2000,5000' },
      /** Messages of each max-rate round of the per-client regime (0: none). */
      'per-client-max-messages': { type: 'string', default: '20000' },
      /** Fan-out regime: --clients over --channels, at these rates. */
      'fan-out-rates': { type: 'string', default: '200,1000' },
      'fan-out-max-messages': { type: 'string', default: '5000' },
      /** Steady regimes: seconds per paced round, rounds per rate (alternating), warm-up per side before measuring. */
      'steady-seconds': { type: 'string', default: '10' },
      'steady-rounds': { type: 'string', default: '2' },
      'warmup-seconds': { type: 'string', default: '15' },
      'warmup-rate': { type: 'string', default: '1000' },
      /** Cold start: a fresh cluster, per-client channels at this rate for this long, CPU per message each second. */
      'cold-rate': { type: 'string', default: '1000' },
      'cold-seconds': { type: 'string', default: '30' },
      /**
       * Topologies regime: variants measured against the single-node reference, each terms joined by +
       * (rabbitmq-cluster, classic, quorum, stream, sentinel, redis-cluster), through the per-client and
       * fan-out regimes' rates (topologies.ts).
       */
      topologies: { type: 'string', default: 'rabbitmq-cluster+quorum,rabbitmq-cluster+stream,sentinel,redis-cluster' },
      /** KEY=VALUE,… added to every SocketBridge member's environment (say SOCKETBRIDGE_PREFETCH=1000). */
      'sb-env': { type: 'string', default: '' },
      /** The baseline: bare, or with a Redis history append per message and a heartbeat per socket (ws-baseline.ts). */
      baseline: { type: 'string', default: 'bare' },
    },
  });
  const baseline = values.baseline as BaselineKind;
  if (!['bare', 'history'].includes(baseline)) throw new Error('--baseline must be bare or history');
  const regimes = values.regimes.split(',');
  for (const regime of regimes) if (!(REGIMES as readonly string[]).includes(regime)) throw new Error(`--regimes takes ${REGIMES.join(', ')}`);
  const sbClient = values['sb-client'] as SbClient;
  if (!['library', 'raw', 'wire'].includes(sbClient)) throw new Error('--sb-client must be library, raw or wire');
  const messageIds = values['message-id'] as MessageIds;
  if (!['unique', 'none'].includes(messageIds)) throw new Error('--message-id must be unique or none');
  const cpu = values.cpu === 'none' ? undefined : Number(values.cpu);
  if (cpu !== undefined && !(Number.isInteger(cpu) && cpu >= 0 && cpu < availableParallelism())) throw new Error(`--cpu must be none or a CPU number below ${availableParallelism()}`);
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
    messageIds,
  };
  for (const key of ['clients', 'perChannel', 'loadgens', 'rounds', 'latencyRounds'] as const) {
    if (!Number.isInteger(options[key]) || options[key] < 1) throw new Error(`${key} must be a positive whole number`);
  }
  const steady: SteadyOptions = {
    seconds: Number(values['steady-seconds']),
    rounds: Number(values['steady-rounds']),
    warmupSeconds: Number(values['warmup-seconds']),
    warmupRate: Number(values['warmup-rate']),
    loadgens: options.loadgens,
  };
  const perClientChannels = Array.from({ length: Number(values['per-client-channels']) }, (_, i) => `bench.c-${i}`);
  const perClient: Regime = { name: 'per-client', clients: perClientChannels.length, channels: perClientChannels, rates: numbers(values['per-client-rates']), maxMessages: Number(values['per-client-max-messages']), messageIds };
  const fanOut: Regime = { name: 'fan-out', clients: options.clients, channels, rates: numbers(values['fan-out-rates']), maxMessages: Number(values['fan-out-max-messages']), messageIds };
  const plans = [...(regimes.includes('per-client') ? [perClient] : []), ...(regimes.includes('fan-out') ? [fanOut] : [])];
  const topologies = regimes.includes('topologies') ? parseTopologies(values.topologies) : [];
  const sbEnv = Object.fromEntries(values['sb-env'].split(',').filter(Boolean).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
  const started: Side[] = [];
  const results: SideResult[] = [];
  const regimeResults: RegimeResult[] = [];
  try {
    // The baseline and SocketBridge sides, unless only the cold start or the topologies run.
    for (const start of regimes.includes('burst') || plans.length ? [() => startBaseline(baseline), () => startSocketBridge(2, sbEnv)] : []) {
      const side = await start();
      started.push(side);
      if (cpu !== undefined) pinSide(side, cpu);
    }
    if (regimes.includes('burst')) results.push(...(await burst(started, options)));
    for (const plan of plans) regimeResults.push(await runRegime(started, plan, steady));
  } finally {
    progress('');
    for (const side of started) {
      await side.stop();
      await removeTopology(side.exchange);
    }
  }
  // Topology variants against the single-node reference, through the per-client and fan-out regimes' rates.
  // A regime with no paced rate above 0 and no max-rate messages is left out (say --fan-out-rates 0 --fan-out-max-messages 0).
  const topologyPlans = [perClient, fanOut].map((plan) => ({ ...plan, rates: plan.rates.filter((rate) => rate > 0) })).filter((plan) => plan.rates.length || plan.maxMessages > 0);
  const topologyResults: TopologyResult[] = topologies.length ? await runTopologies(topologies, topologyPlans, steady, cpu, sbEnv) : [];
  let cold: ColdStart | undefined;
  if (regimes.includes('cold')) {
    // Started alone, after the other sides stopped: its processes warm up as a new pod's would.
    const side = await startSocketBridge(2, sbEnv);
    try {
      if (cpu !== undefined) pinSide(side, cpu);
      const regime: Regime = { name: 'per-client', clients: perClientChannels.length, channels: perClientChannels, rates: [], maxMessages: 0, messageIds };
      cold = await coldStart(side, regime, Number(values['cold-rate']), Number(values['cold-seconds']), options.loadgens);
    } finally {
      await side.stop();
      await removeTopology(side.exchange);
    }
  }
  const idle = Number(values.idle) > 0 ? await idleCost(Number(values.idle), options.loadgens) : undefined;
  const confined = cpu === undefined ? 'not confined' : `each side's server processes confined to CPU ${cpu} (taskset)`;
  const sections = [`Server side ${confined}; RabbitMQ and Redis (shared, unconfined) counted on both sides. Ratios compare rounds of the same run, alternating the sides.`];
  if (results.length) sections.push(markdown(results, options, idle));
  else if (idle) sections.push(idleLine(idle));
  sections.push(...regimeResults.map(regimeMarkdown));
  if (topologyResults.length) sections.push(topologiesMarkdown(topologyResults));
  if (cold) sections.push(coldMarkdown(cold, values['sb-env'] || 'default settings'));
  const table = sections.join('\n\n');
  mkdirSync(values.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const burstSummary = results.length
    ? (() => {
        const ratios = roundRatios(results[0]!, results[1]!);
        const p99Ratios = latencyRatios(results[0]!, results[1]!);
        return { results, ratios, medianRatio: median(ratios), p99Ratios, medianP99Ratio: median(p99Ratios) };
      })()
    : {};
  const json = {
    options: { ...options, channels: channels.length, cpu: cpu ?? null, regimes, steady, sbEnv: values['sb-env'], topologies: values.topologies },
    ...burstSummary,
    regimes: regimeResults.map((result) => ({ ...result, ratios: regimeRatios(result) })),
    topologies: topologyResults.map((result) => ({ ...result, summary: topologySummary(result) })),
    cold,
    idle,
  };
  writeFileSync(`${values.out}/bench-${stamp}.json`, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(`${values.out}/bench-${stamp}.md`, `${table}\n`);
  process.stdout.write(`\n${table}\n\n(written to ${values.out}/bench-${stamp}.{json,md})\n`);
  process.exit(0);
}

/** The burst part: max-rate rounds with the client library (or --sb-client), then latency rounds. */
async function burst(sides: Side[], options: Options): Promise<SideResult[]> {
  const { channels, sbClient } = options;
  const runs: Array<{ side: Side; load: Loadgens; rounds: Throughput[] }> = [];
  try {
    for (const side of sides) {
      const load = new Loadgens(side.name.startsWith('bare') ? 'ws' : 'sb', side.ports, options.clients, channels, options.loadgens, sbClient);
      runs.push({ side, load, rounds: [] });
      progress(`${side.name}: connecting ${options.clients} clients`);
      await load.ready(120000);
    }
    for (let round = 0; round < options.rounds; round++) {
      for (const { side, load, rounds } of runs) rounds.push(await throughputRound(side, load, options, round));
    }
    const [base, sb] = runs as [(typeof runs)[number], (typeof runs)[number]];
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
    return [
      { side: base.side.name, throughput: base.rounds, latency: baseRounds[0]!, latencyRounds: baseRounds, rssMiB: rss(base.side) },
      { side: sb.side.name, throughput: sb.rounds, latency: sbLatency, latencyRounds: sbRounds, rssMiB: rss(sb.side) },
    ];
  } finally {
    progress('');
    await Promise.all(runs.map(({ load }) => load.stop()));
  }
}

// Ctrl-C: exit through 'exit', where devkit kills every process the run started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
void main();
