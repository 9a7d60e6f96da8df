// The steady regimes of `npm run bench`: the traffic users send, not only bursts. Per-client
// channels (each message for one client on its own channel: nothing amortises the per-message
// path) and fan-out (each message to many receivers), at fixed paced rates and at the highest
// rate the side sustains. Both sides' clients are equally light (SocketBridge's speak the wire
// protocol on ws), both sides are warmed first, and rounds alternate baseline, SocketBridge, … so
// the machine's noise falls on both alike.
import { cpuSeconds } from './proc.js';
import { Loadgens, deliverAll, median, produce, progress, round2, serverProcesses, type MessageIds, type Side } from './sides.js';

export interface Regime {
  name: 'per-client' | 'fan-out';
  clients: number;
  channels: string[];
  /** Paced rates, messages/s. */
  rates: number[];
  /** Messages of one max-rate round (as fast as RabbitMQ confirms them); 0: no max-rate rounds. */
  maxMessages: number;
  messageIds: MessageIds;
}

export interface SteadyOptions {
  seconds: number;
  warmupSeconds: number;
  warmupRate: number;
  rounds: number;
  loadgens: number;
}

/** One measured window of one side. */
export interface SteadyRound {
  round: number;
  /** messages/s asked of the producer; 0: as fast as RabbitMQ confirms. */
  rate: number;
  messages: number;
  deliveries: number;
  lost: number;
  duplicates: number;
  misrouted: number;
  /** From the first delivery to the last. */
  seconds: number;
  deliveriesPerSecond: number;
  serverCpuSeconds: number;
  deliveriesPerCoreSecond: number;
  /** Server CPU per message, µs, all roles together and by role (RabbitMQ and Redis included). */
  cpuPerMessageUs: number;
  cpuPerMessageUsByRole: Record<string, number>;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** SocketBridge only: the part after the publisher (the client's receipt − the envelope's ts, whole ms). */
  hopP50Ms: number | null;
  hopP99Ms: number | null;
  loadgenCpuSeconds: number;
}

export interface RegimeResult {
  regime: Regime['name'];
  clients: number;
  channels: number;
  receiversPerMessage: number;
  /** By side name, every round in order (steady rates first, then max-rate rounds). */
  rounds: Record<string, SteadyRound[]>;
}

/**
 * One window: the producer sends `messages` spread over the regime's channels at `rate`; the
 * window lasts until every delivery arrived (or ten seconds pass with nothing new after the
 * producer finished: what is missing then is lost). Server CPU is read from /proc before and after.
 */
async function measure(side: Side, load: Loadgens, regime: Regime, rate: number, messages: number, round: number): Promise<SteadyRound> {
  const perChannel = Math.max(1, Math.round(messages / regime.channels.length));
  const sent = perChannel * regime.channels.length;
  const expected = perChannel * regime.clients;
  await load.reset();
  const processes = serverProcesses(side);
  const before = processes.map(({ pid }) => cpuSeconds(pid));
  const loadgenBefore = load.cpuSeconds();
  await deliverAll(load, expected, produce(side.exchange, regime.channels, perChannel, rate, { messageIds: regime.messageIds, amqpUrl: side.amqpUrl, confirmWindow: side.confirmWindow }), (got) =>
    progress(`${regime.name}, ${side.name}, ${rate ? `${rate} msg/s` : 'max rate'}: ${got.toLocaleString()} / ${expected.toLocaleString()} deliveries`),
  );
  const byRole: Record<string, number> = {};
  processes.forEach(({ role, pid }, i) => (byRole[role] = (byRole[role] ?? 0) + cpuSeconds(pid) - before[i]!));
  const report = await load.report(true);
  const serverCpuSeconds = Object.values(byRole).reduce((a, b) => a + b, 0);
  const seconds = (report.lastAt - report.firstAt) / 1000;
  const perMessage = (cpu: number) => Math.round((cpu / sent) * 1e6);
  return {
    round,
    rate,
    messages: sent,
    deliveries: report.deliveries,
    lost: expected - report.deliveries,
    duplicates: report.duplicates,
    misrouted: report.misrouted,
    seconds: round2(seconds),
    deliveriesPerSecond: Math.round(report.deliveries / seconds),
    serverCpuSeconds: round2(serverCpuSeconds),
    deliveriesPerCoreSecond: Math.round(report.deliveries / serverCpuSeconds),
    cpuPerMessageUs: perMessage(serverCpuSeconds),
    cpuPerMessageUsByRole: Object.fromEntries(Object.entries(byRole).map(([role, cpu]) => [role, perMessage(cpu)])),
    p50Ms: report.p50,
    p99Ms: report.p99,
    maxMs: report.max,
    hopP50Ms: report.hopP50,
    hopP99Ms: report.hopP99,
    loadgenCpuSeconds: round2(load.cpuSeconds() - loadgenBefore),
  };
}

/** Both sides (baseline first) through one regime: connect, warm, then alternating rounds at each rate and at max rate. */
export async function runRegime(sides: Side[], regime: Regime, options: SteadyOptions): Promise<RegimeResult> {
  const loads: Loadgens[] = [];
  const rounds: Record<string, SteadyRound[]> = Object.fromEntries(sides.map((side) => [side.name, []]));
  try {
    for (const side of sides) {
      progress(`${regime.name}: connecting ${regime.clients} clients to the ${side.name}`);
      const load = new Loadgens(side.name.startsWith('bare') ? 'ws' : 'sb', side.ports, regime.clients, regime.channels, options.loadgens, 'wire');
      loads.push(load);
      await load.ready(120000);
    }
    // Warm: every process of both sides runs the hot path until the JIT has settled (not measured).
    for (const [i, side] of sides.entries()) {
      progress(`${regime.name}: warming the ${side.name} for ${options.warmupSeconds} s`);
      await measure(side, loads[i]!, regime, options.warmupRate, options.warmupRate * options.warmupSeconds, 0);
    }
    const plan = [...regime.rates.map((rate) => ({ rate, messages: rate * options.seconds })), ...(regime.maxMessages > 0 ? [{ rate: 0, messages: regime.maxMessages }] : [])];
    for (const { rate, messages } of plan) {
      for (let round = 1; round <= options.rounds; round++) {
        for (const [i, side] of sides.entries()) rounds[side.name]!.push(await measure(side, loads[i]!, regime, rate, messages, round));
      }
    }
  } finally {
    progress('');
    await Promise.all(loads.map((load) => load.stop()));
  }
  return {
    regime: regime.name,
    clients: regime.clients,
    channels: regime.channels.length,
    receiversPerMessage: round2(regime.clients / regime.channels.length),
    rounds,
  };
}

/** Per rate: each round's ratio of SocketBridge to the baseline (deliveries per core-second, p99), and their medians. */
export function regimeRatios(result: RegimeResult): Array<{ rate: number; throughput: number[]; p99: number[]; medianThroughput: number; medianP99: number }> {
  const [base, sb] = Object.values(result.rounds) as [SteadyRound[], SteadyRound[]];
  const rates = [...new Set(base.map((r) => r.rate))];
  return rates.map((rate) => {
    const b = base.filter((r) => r.rate === rate);
    const s = sb.filter((r) => r.rate === rate);
    const throughput = b.map((r, i) => round2(s[i]!.deliveriesPerCoreSecond / r.deliveriesPerCoreSecond));
    const p99 = b.map((r, i) => round2((s[i]!.p99Ms ?? 0) / (r.p99Ms || Number.NaN)));
    return { rate, throughput, p99, medianThroughput: median(throughput), medianP99: median(p99) };
  });
}

/** Each role's CPU per message (µs) over a set of rounds, weighted by their messages. */
function cpuByRole(rounds: SteadyRound[]): string {
  const total: Record<string, number> = {};
  let messages = 0;
  for (const r of rounds) {
    messages += r.messages;
    for (const [role, us] of Object.entries(r.cpuPerMessageUsByRole)) total[role] = (total[role] ?? 0) + us * r.messages;
  }
  return Object.entries(total)
    .map(([role, us]) => `${role} ${Math.round(us / messages)}`)
    .join(', ');
}

export function regimeMarkdown(result: RegimeResult): string {
  const [baseName, sbName] = Object.keys(result.rounds) as [string, string];
  const base = result.rounds[baseName]!;
  const sb = result.rounds[sbName]!;
  const ratios = regimeRatios(result);
  const each = (rounds: SteadyRound[], f: (r: SteadyRound) => unknown) => rounds.map(f).join(', ');
  const lines = [
    `### ${result.regime}: ${result.channels} channels × ${result.receiversPerMessage} receivers (${result.clients} wire-protocol clients)`,
    '',
    '| rate (msg/s) | deliveries per server core-second, each round: baseline · SocketBridge | ratio, each round; median | server CPU per message (µs): baseline · SocketBridge | p99 (ms): baseline · SocketBridge | p99 ratio; median | deliveries/s: baseline · SocketBridge | lost / dup / misrouted |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const { rate, throughput, p99, medianThroughput, medianP99 } of ratios) {
    const b = base.filter((r) => r.rate === rate);
    const s = sb.filter((r) => r.rate === rate);
    const losses = (rounds: SteadyRound[]) => ['lost', 'duplicates', 'misrouted'].map((k) => rounds.reduce((sum, r) => sum + (r[k as 'lost'] as number), 0)).join(' / ');
    lines.push(
      `| ${rate || 'max'} | ${each(b, (r) => r.deliveriesPerCoreSecond)} · ${each(s, (r) => r.deliveriesPerCoreSecond)} | ${throughput.join(', ')}; **${medianThroughput.toFixed(2)}** | ${each(b, (r) => r.cpuPerMessageUs)} · ${each(s, (r) => r.cpuPerMessageUs)} | ${each(b, (r) => r.p99Ms)} · ${each(s, (r) => r.p99Ms)} | ${p99.join(', ')}; **${medianP99.toFixed(2)}** | ${each(b, (r) => r.deliveriesPerSecond)} · ${each(s, (r) => r.deliveriesPerSecond)} | ${losses(b)} · ${losses(s)} |`,
    );
  }
  lines.push('', 'Server CPU per message by role (µs, over the rounds of each rate):', '');
  for (const { rate } of ratios) {
    lines.push(`- ${rate || 'max'}: baseline: ${cpuByRole(base.filter((r) => r.rate === rate))}; SocketBridge: ${cpuByRole(sb.filter((r) => r.rate === rate))}`);
  }
  // Where SocketBridge's tail is: before the publisher's receipt (RabbitMQ, the consumer) or after it.
  lines.push('', "SocketBridge's latency after the publisher's receipt (the envelope's ts to the client, whole ms), p50 / p99 each round:", '');
  for (const { rate } of ratios) {
    lines.push(`- ${rate || 'max'}: ${each(sb.filter((r) => r.rate === rate), (r) => `${r.hopP50Ms} / ${r.hopP99Ms}`)}`);
  }
  return lines.join('\n');
}

/** One second of a cold start: the messages delivered in it and the server CPU they cost. */
export interface ColdSample {
  second: number;
  deliveries: number;
  cpuPerMessageUs: number;
  cpuPerMessageUsByRole: Record<string, number>;
}

export interface ColdStart {
  rate: number;
  samples: ColdSample[];
  /** CPU per message once warm: the median of the last third of the seconds. */
  warmUs: number;
  /** The first second from which every 3-second average costs at most 1.25 × warmUs per message (null: never). */
  warmAfterSeconds: number | null;
  /** CPU per message over the first 5 seconds against warm. */
  firstFiveSecondsUs: number;
}

/**
 * A freshly started side (as a pod the autoscaler adds): its clients connect, then messages at
 * `rate` for `seconds`, and every second the server CPU per message delivered in it, by role.
 */
export async function coldStart(side: Side, regime: Regime, rate: number, seconds: number, loadgens: number): Promise<ColdStart> {
  const load = new Loadgens('sb', side.ports, regime.clients, regime.channels, loadgens, 'wire');
  try {
    await load.ready(120000);
    await load.reset();
    const processes = serverProcesses(side).filter(({ role }) => role !== 'rabbitmq' && role !== 'redis');
    const perChannel = Math.max(1, Math.round((rate * seconds) / regime.channels.length));
    let cpu = processes.map(({ pid }) => cpuSeconds(pid));
    let delivered = 0;
    let produced = false;
    const sending = produce(side.exchange, regime.channels, perChannel, rate, { messageIds: regime.messageIds, amqpUrl: side.amqpUrl, confirmWindow: side.confirmWindow }).then(() => void (produced = true));
    const samples: ColdSample[] = [];
    for (let second = 1; !produced && second <= seconds + 30; second++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const now = processes.map(({ pid }) => cpuSeconds(pid));
      const { deliveries } = await load.report();
      const count = deliveries - delivered;
      const byRole: Record<string, number> = {};
      processes.forEach(({ role }, i) => (byRole[role] = (byRole[role] ?? 0) + now[i]! - cpu[i]!));
      const perMessage = (seconds: number) => (count > 0 ? Math.round((seconds / count) * 1e6) : 0);
      samples.push({
        second,
        deliveries: count,
        cpuPerMessageUs: perMessage(Object.values(byRole).reduce((a, b) => a + b, 0)),
        cpuPerMessageUsByRole: Object.fromEntries(Object.entries(byRole).map(([role, s]) => [role, perMessage(s)])),
      });
      progress(`cold start at ${rate} msg/s: second ${second}, ${samples.at(-1)!.cpuPerMessageUs} µs per message`);
      cpu = now;
      delivered = deliveries;
    }
    await sending;
    const measured = samples.filter((s) => s.deliveries > 0);
    const warmUs = median(measured.slice(-Math.max(1, Math.floor(measured.length / 3))).map((s) => s.cpuPerMessageUs));
    // One noisy second on a shared machine is not a cold JIT: compare 3-second averages.
    const average = measured.map((_, i) => {
      const window = measured.slice(i, i + 3);
      return window.reduce((sum, s) => sum + s.cpuPerMessageUs * s.deliveries, 0) / window.reduce((sum, s) => sum + s.deliveries, 0);
    });
    const lastCold = average.findLastIndex((us) => us > 1.25 * warmUs);
    const firstFive = measured.slice(0, 5);
    return {
      rate,
      samples,
      warmUs,
      warmAfterSeconds: lastCold + 1 < measured.length ? (measured[lastCold + 1]?.second ?? null) : null,
      firstFiveSecondsUs: Math.round(firstFive.reduce((sum, s) => sum + s.cpuPerMessageUs * s.deliveries, 0) / Math.max(1, firstFive.reduce((sum, s) => sum + s.deliveries, 0))),
    };
  } finally {
    progress('');
    await load.stop();
  }
}

export function coldMarkdown(cold: ColdStart, note: string): string {
  const series = cold.samples.map((s) => s.cpuPerMessageUs).join(', ');
  return [
    `### cold start (${note}): a fresh cluster, per-client channels at ${cold.rate} msg/s`,
    '',
    `Cluster CPU per message (µs, RabbitMQ and Redis not counted), each second from the first message: ${series}.`,
    `Warm: ${cold.warmUs} µs; the first 5 s cost ${cold.firstFiveSecondsUs} µs per message (${(cold.firstFiveSecondsUs / cold.warmUs).toFixed(1)} ×); 3-second averages within 1.25 × warm from second ${cold.warmAfterSeconds ?? 'never'}.`,
  ].join('\n');
}
