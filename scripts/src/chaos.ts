#!/usr/bin/env node
// `npm run chaos`: the fault-injection run. Real processes, real RabbitMQ and Redis: messages flow
// to recovering clients while a worker, a broker and the active publisher are killed, the state
// server restarts and RabbitMQ drops the publisher's connection; with `--rabbitmq cluster`, on a
// three-node RabbitMQ cluster and a quorum queue whose leader's node is then SIGKILLed; with
// `--redis sentinel|cluster`, on a Redis master + replica + three sentinels or a six-node Redis Cluster
// of the run's own, whose master (or the primary of some of the run's channels) is SIGKILLed. Then the
// same run without recovery.
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { SocketBridgeClient } from '@socketbridge/client';
import { queueArguments, registryKeys, withTimeout, type BridgeQueue } from '@socketbridge/common';
import {
  AmqpProducer,
  LocalCluster,
  PublisherApi,
  RabbitCluster,
  RedisClusterSet,
  RedisSentinelSet,
  TcpBalancer,
  devSecrets,
  getJson,
  opsFetch,
  rabbitNames,
  waitFor,
  type ManagedProcess,
} from '@socketbridge/devkit';

const run = promisify(execFile);

export interface ChaosOptions {
  clients: number;
  channels: number;
  /** Channels each client subscribes to. */
  perClient: number;
  messages: number;
  /** Messages per second RabbitMQ is fed with. */
  rate: number;
  recover: boolean;
  /** `cluster`: a three-node RabbitMQ cluster of the run's own and a quorum queue, whose leader's node is killed too. */
  rabbitmq?: 'single' | 'cluster';
  /** `sentinel` or `cluster`: a Redis topology of the run's own instead of the machine's Redis, whose master (or a channel's primary) is killed too. */
  redis?: 'single' | 'sentinel' | 'cluster';
  log?: (line: string) => void;
}

/** What the messages sent from one fault to the next (by sequence number) came to. */
export interface FaultReport {
  fault: string;
  sent: number;
  delivered: number;
  duplicates: number;
  lost: number;
  /** Deliveries arriving from this fault to the next that came after a higher sequence number on their channel. */
  outOfOrder: number;
  /** The longest silence in deliveries (all clients together) that began between the fault and the next one (the last: 15 s), ms. */
  stallMs: number;
  /** The same on the one client's channel that stayed silent longest (a Redis Cluster primary stalls only its own channels), ms. */
  channelStallMs: number;
}

export interface ChaosReport {
  recover: boolean;
  sent: number;
  expectedDeliveries: number;
  delivered: number;
  recovered: number;
  duplicatesDropped: number;
  lost: number;
  outOfOrder: number;
  deliveredTwice: number;
  gaps: number;
  faults: string[];
  perFault: FaultReport[];
  seconds: number;
}

/** The publisher whose RabbitMQ consumer is active (single-active-consumer picks one). */
async function activePublisher(cluster: LocalCluster): Promise<ManagedProcess | undefined> {
  for (const publisher of cluster.live(cluster.publishers)) {
    const metrics = await (await opsFetch(`http://127.0.0.1:${publisher.port}/metrics`, cluster.env.SOCKETBRIDGE_OPS_KEY)).text().catch(() => '');
    if (/socketbridge_messages_acked_total\{[^}]*\} [1-9]/.test(metrics)) return publisher;
  }
  return undefined;
}

type Ctl = (args: string[]) => Promise<string>;
const machineCtl: Ctl = async (args) => (await run('rabbitmqctl', args)).stdout;

async function closeRabbitConnectionOf(cluster: LocalCluster, publisher: ManagedProcess, ctl: Ctl): Promise<boolean> {
  const { instanceId } = await getJson<{ instanceId: string }>(`http://127.0.0.1:${publisher.port}/cluster`, cluster.env.SOCKETBRIDGE_OPS_KEY);
  const stdout = await ctl(['list_connections', 'pid', 'client_properties', '-q', '--no-table-headers']);
  const line = stdout.split('\n').find((l) => l.includes(instanceId));
  if (!line) return false;
  await ctl(['close_connection', line.split('\t')[0]!, 'chaos: connection closed by the broker']);
  return true;
}

/**
 * The longest silence between consecutive arrivals that began in [from, from + windowMs]: one that
 * outlasts the window (a failover with no delivery until after the next fault) counts to its end.
 */
function longestGap(arrivals: number[], from: number, windowMs: number): number {
  let gap = 0;
  let last = from;
  for (const at of arrivals) {
    if (at < from) continue;
    gap = Math.max(gap, at - last);
    if (at > from + windowMs) break;
    last = at;
  }
  return gap;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const names = rabbitNames('chaos');
  const prefix = `chaos-${randomUUID().slice(0, 6)}`;
  const channels = Array.from({ length: options.channels }, (_, i) => `${prefix}.room-${i}`);
  // On a RabbitMQ cluster the messages go through a quorum queue of a bridge (single active consumer),
  // declared through the first node, which so leads it and takes the publishers' first connections.
  const redis = options.redis === 'sentinel' ? await RedisSentinelSet.start({ masterName: 'sbchaos' }) : options.redis === 'cluster' ? await RedisClusterSet.start() : undefined;
  if (redis) log(`Redis ${options.redis}: ${redis.url()}`);
  const rabbit = options.rabbitmq === 'cluster' ? await RabbitCluster.start({ prefix: 'sbchaos' }).catch(async (error: unknown) => {
    await redis?.stop();
    throw error;
  }) : undefined;
  const exchange = rabbit ? `${names.SOCKETBRIDGE_EXCHANGE}.quorum` : names.SOCKETBRIDGE_EXCHANGE;
  const quorum: BridgeQueue = { name: `${names.SOCKETBRIDGE_EXCHANGE}.quorum`, type: 'quorum', durable: true, singleActiveConsumer: true, bindings: [], route: { channel: '{routingKey}' } };
  if (rabbit) {
    const setup = await AmqpProducer.connect(rabbit.nodes[0]!.url);
    await setup.channel.assertExchange(exchange, 'topic', { durable: true });
    await setup.channel.assertQueue(quorum.name, { durable: true, arguments: queueArguments(quorum) });
    await setup.channel.bindQueue(quorum.name, exchange, '#');
    await setup.close();
    log(`RabbitMQ cluster of ${rabbit.nodes.length} nodes (${rabbit.nodes.map((n) => n.name).join(', ')}); quorum queue ${quorum.name}`);
  }
  const ctl: Ctl = rabbit ? (args) => rabbit.ctl(rabbit.nodes[1]!, args) : machineCtl;
  const cluster = await LocalCluster.start({
    brokers: 3,
    workers: 2,
    publishers: 2,
    env: {
      ...names,
      SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER: 'true',
      SOCKETBRIDGE_PUBLIC_CHANNELS: `${prefix}.*`,
      SOCKETBRIDGE_HISTORY_SIZE: String(options.messages * 2),
      SOCKETBRIDGE_REMAP_SWITCH_DELAY_MS: '1000',
      SOCKETBRIDGE_REMAP_GRACE_MS: '2000',
      SCC_STATE_SERVER_STARTUP_DELAY: '2000',
      ...(rabbit ? { SOCKETBRIDGE_RABBITMQ_URL: rabbit.url(), SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS: '2000' } : {}),
      ...(redis ? { SOCKETBRIDGE_REDIS_URL: redis.url() } : {}),
    },
  }).catch(async (error: unknown) => {
    await rabbit?.stop();
    await redis?.stop();
    throw error;
  });
  if (rabbit) {
    const { name, type, singleActiveConsumer, route } = quorum;
    const api = new PublisherApi(`http://127.0.0.1:${cluster.publishers[0]!.port}`, devSecrets.SOCKETBRIDGE_API_KEY);
    await api.request('PUT', `/v1/bridges/${prefix}`, { queues: [{ name, type, singleActiveConsumer, route }], channels: [{ pattern: `${prefix}.*`, access: 'public' }] });
    for (const publisher of cluster.publishers) await publisher.waitForLog((l) => l.msg === 'consuming' && l.queue === name, 30000, 'the publishers to consume the quorum queue');
  }
  const balancer = new TcpBalancer(() => cluster.live(cluster.workers).map((w) => w.port));
  await balancer.start();
  // On a cluster the producer uses a node that stays up, as a producer of a cluster would after its own reconnect.
  const producer = await AmqpProducer.connect(rabbit ? rabbit.nodes[2]!.url : undefined);
  producer.connection.on('error', (error: Error) => log(`  producer connection: ${error.message}`));
  const faults: string[] = [];
  const faultMarks: Array<{ fault: string; at: number; sent: number }> = [];
  const arrivals: number[] = [];
  // Per client and channel: the sequence numbers in arrival order, and when each arrived.
  const clients: Array<{ client: SocketBridgeClient; seen: Map<string, number[]>; times: Map<string, number[]> }> = [];
  try {
    for (let i = 0; i < options.clients; i++) {
      const client = new SocketBridgeClient({
        port: balancer.port,
        recover: options.recover,
        socketOptions: { autoReconnectOptions: { initialDelay: 200, maxDelay: 1000, randomness: 300 } },
      });
      await client.connected();
      const seen = new Map<string, number[]>();
      const times = new Map<string, number[]>();
      for (let k = 0; k < options.perClient; k++) {
        const channel = channels[(i + k) % channels.length]!;
        seen.set(channel, []);
        times.set(channel, []);
        await client.subscribe(channel, {
          onMessage: (envelope) => {
            const now = Date.now();
            seen.get(channel)!.push((envelope.data as { seq: number }).seq);
            times.get(channel)!.push(now);
            arrivals.push(now);
          },
        });
      }
      clients.push({ client, seen, times });
    }
    log(`${options.clients} clients subscribed (${options.perClient} channels each) through the balancer; sending ${options.messages} messages at ${options.rate}/s`);

    const perChannel = Math.ceil(options.messages / channels.length);
    let sent = 0;
    const sending = (async () => {
      const batch = Math.max(1, Math.round(options.rate / 20));
      for (let seq = 0; seq < perChannel; seq++) {
        for (const channel of channels) {
          producer.channel.publish(exchange, channel, Buffer.from(JSON.stringify({ seq })), {
            contentType: 'application/json',
            messageId: `${channel}:${seq}`,
            persistent: true,
          });
          sent++;
          if (sent % batch === 0) {
            await producer.channel.waitForConfirms();
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      }
      await producer.channel.waitForConfirms();
    })();

    const total = perChannel * channels.length;
    const at = async (fraction: number) => waitFor(() => sent >= total * fraction, 600000, `${Math.round(fraction * 100)}% sent`, 50);
    const fault = (what: string) => {
      faults.push(what);
      faultMarks.push({ fault: what, at: Date.now(), sent });
      log(`  [${String(sent).padStart(6)} sent] ${what}`);
    };

    await at(0.15);
    await cluster.workers[0]!.stop('SIGKILL');
    fault('SIGKILL worker-1 (its clients reconnect through the balancer to worker-2)');
    await cluster.addWorker();
    fault('started a replacement worker');

    await at(0.3);
    await cluster.brokers[0]!.stop('SIGKILL');
    fault('SIGKILL broker-1 (its channels remap to the two survivors)');

    await at(0.45);
    const active = (await activePublisher(cluster)) ?? cluster.publishers[0]!;
    await active.stop('SIGKILL');
    fault(`SIGKILL ${active.name}, the active consumer (the other replica takes over the queue)`);

    await at(0.6);
    const statePort = cluster.state.port;
    await cluster.state.stop('SIGKILL');
    fault('SIGKILL the state server');
    await cluster.startState(statePort);
    fault('restarted the state server on its port');

    await at(0.75);
    const current = (await activePublisher(cluster)) ?? cluster.live(cluster.publishers)[0];
    if (current && (await closeRabbitConnectionOf(cluster, current, ctl))) fault(`RabbitMQ closed ${current.name}'s connection`);

    if (redis) {
      await at(0.85);
      // A second of traffic after the previous fault (which may have come late: rabbitmqctl is slow), so each has a window of its own.
      const previous = faultMarks.at(-1)!.sent;
      await waitFor(() => sent >= Math.min(total, previous + options.rate), 600000, 'a second of traffic after the previous fault', 50);
      if (redis instanceof RedisSentinelSet) {
        fault('SIGKILL the Redis master (Sentinel promotes the replica)');
        const promotedAfter = await redis.killPrimary();
        log(`    Sentinel promoted the replica after ${promotedAfter} ms`);
      } else {
        const channel = channels[0]!;
        const owner = await redis.primaryOf(registryKeys.history(channel));
        const owned: string[] = [];
        for (const c of channels) if ((await redis.primaryOf(registryKeys.history(c))) === owner) owned.push(c);
        fault(`SIGKILL the Redis Cluster primary of ${owned.length} of the ${channels.length} channels (its replica is promoted)`);
        const { promotedAfterMs } = await redis.killPrimary(registryKeys.history(channel));
        log(`    the replica was promoted after ${promotedAfterMs} ms`);
      }
      // The failover is over once every message sent before it has arrived (the requeued ones come
      // late): only then the next fault, so its stall and its out-of-order count are its own. Plain
      // clients may have lost some for good: then after a bound.
      const before = Math.floor(faultMarks.at(-1)!.sent / channels.length);
      const arrived = () => clients.every(({ seen }) => [...seen.values()].every((list) => new Set(list.filter((seq) => seq < before)).size >= before));
      await waitFor(arrived, 30000, 'every message sent before the Redis failover to arrive', 200).catch(() => log('    not every message sent before the failover arrived'));
    }

    if (rabbit) {
      await at(redis ? 0.93 : 0.85);
      const leader = rabbit.nodes[0]!;
      await rabbit.kill(leader);
      fault(`SIGKILL RabbitMQ node ${leader.name}: the quorum queue's leader and the publishers' first node`);
    }

    await sending;
    log(`all ${sent} messages confirmed by RabbitMQ; waiting for the clients to catch up`);
    const expectedOf = (seen: Map<string, number[]>) => seen.size * perChannel;
    const caughtUp = () => clients.every(({ seen }) => [...seen.values()].every((list) => new Set(list).size >= perChannel));
    await waitFor(caughtUp, options.recover ? 120000 : 20000, 'every client to hold every message', 200).catch(() => {
      log('  not every client caught up: counting what arrived');
    });

    const report: ChaosReport = {
      recover: options.recover,
      sent,
      expectedDeliveries: 0,
      delivered: 0,
      recovered: 0,
      duplicatesDropped: 0,
      lost: 0,
      outOfOrder: 0,
      deliveredTwice: 0,
      gaps: 0,
      faults,
      perFault: [],
      seconds: 0,
    };
    // Per fault: the messages sent from it to the next fault, by sequence number on every channel.
    arrivals.sort((a, b) => a - b);
    faultMarks.forEach((mark, i) => {
      const from = Math.floor(mark.sent / channels.length);
      const to = i + 1 < faultMarks.length ? Math.floor(faultMarks[i + 1]!.sent / channels.length) : perChannel;
      const [fromAt, toAt] = [mark.at, i + 1 < faultMarks.length ? faultMarks[i + 1]!.at : Infinity];
      const entry: FaultReport = { fault: mark.fault, sent: (to - from) * channels.length, delivered: 0, duplicates: 0, lost: 0, outOfOrder: 0, channelStallMs: 0, stallMs: longestGap(arrivals, mark.at, i + 1 < faultMarks.length ? faultMarks[i + 1]!.at - mark.at : 15000) };
      for (const { seen, times } of clients) {
        for (const [channel, list] of seen) {
          // Out of order counts by arrival time: a message requeued in a failover arrives late, after the fault.
          const at = times.get(channel)!;
          entry.channelStallMs = Math.max(entry.channelStallMs, longestGap(at, fromAt, Math.min(toAt, fromAt + 15000) - fromAt));
          let highest = -1;
          list.forEach((seq, k) => {
            if (seq < highest && at[k]! >= fromAt && at[k]! < toAt) entry.outOfOrder++;
            highest = Math.max(highest, seq);
          });
          const inRange = list.filter((seq) => seq >= from && seq < to);
          const unique = new Set(inRange);
          entry.delivered += unique.size;
          entry.duplicates += inRange.length - unique.size;
          entry.lost += to - from - unique.size;
        }
      }
      report.perFault.push(entry);
    });
    for (const { client, seen } of clients) {
      report.expectedDeliveries += expectedOf(seen);
      report.recovered += client.stats.recovered;
      report.duplicatesDropped += client.stats.duplicates;
      report.gaps += client.stats.gaps;
      for (const list of seen.values()) {
        report.delivered += list.length;
        const unique = new Set(list);
        report.lost += perChannel - unique.size;
        report.deliveredTwice += list.length - unique.size;
        for (let i = 1; i < list.length; i++) if (list[i]! <= list[i - 1]!) report.outOfOrder++;
      }
    }
    report.seconds = Math.round((Date.now() - started) / 100) / 10;
    return report;
  } finally {
    for (const { client } of clients) client.close();
    await balancer.stop();
    // The run's own RabbitMQ cluster goes as a whole (its default queue's node is dead by now).
    if (!rabbit) await producer.deleteTopology(names).catch(() => undefined);
    await withTimeout(producer.close(), 5000, 'the producer to close').catch(() => undefined);
    await cluster.stop();
    await rabbit?.stop();
    await redis?.stop();
  }
}

function faultTable(report: ChaosReport): string {
  const rows = report.perFault.map((f) => `| ${f.fault} | ${f.sent} | ${f.delivered} | ${f.duplicates} | ${f.lost} | ${f.outOfOrder} | ${f.stallMs} | ${f.channelStallMs} |`);
  return ['| fault (messages sent from it to the next) | sent | delivered (per subscription) | delivered twice | lost | arrived after a later one | longest stall, ms | on one channel, ms |', '|---|---|---|---|---|---|---|---|', ...rows].join('\n');
}

function table(reports: ChaosReport[]): string {
  const rows = [
    ['', ...reports.map((r) => (r.recover ? 'SocketBridge (recovery on)' : 'plain SCC (recovery off)'))],
    ['messages sent', ...reports.map((r) => String(r.sent))],
    ['deliveries expected', ...reports.map((r) => String(r.expectedDeliveries))],
    ['delivered to the app', ...reports.map((r) => String(r.delivered))],
    ['  of which recovered from history', ...reports.map((r) => String(r.recovered))],
    ['duplicates dropped by the client', ...reports.map((r) => String(r.duplicatesDropped))],
    ['delivered twice to the app', ...reports.map((r) => String(r.deliveredTwice))],
    ['out of order', ...reports.map((r) => String(r.outOfOrder))],
    ['gaps reported', ...reports.map((r) => String(r.gaps))],
    ['LOST', ...reports.map((r) => String(r.lost))],
    ['seconds', ...reports.map((r) => String(r.seconds))],
  ];
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n').replace(/\n/, `\n|${'---|'.repeat(reports.length + 1)}\n`);
}

async function main(): Promise<void> {
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const { values } = parseArgs({
    options: {
      rabbitmq: { type: 'string', default: 'single' },
      redis: { type: 'string', default: 'single' },
      // The run's size: smaller on a busy machine.
      clients: { type: 'string', default: '200' },
      messages: { type: 'string', default: '20000' },
    },
  });
  if (values.rabbitmq !== 'single' && values.rabbitmq !== 'cluster') {
    log(`--rabbitmq is single (the machine's RabbitMQ) or cluster (three nodes of the run's own); got ${JSON.stringify(values.rabbitmq)}`);
    process.exit(2);
  }
  if (values.redis !== 'single' && values.redis !== 'sentinel' && values.redis !== 'cluster') {
    log(`--redis is single (the machine's Redis), sentinel (master, replica, three sentinels) or cluster (six-node Redis Cluster); got ${JSON.stringify(values.redis)}`);
    process.exit(2);
  }
  const [clients, messages] = [Number(values.clients), Number(values.messages)];
  if (!(clients > 0 && messages > 0)) {
    log('--clients and --messages are positive numbers');
    process.exit(2);
  }
  const rabbitmq = values.rabbitmq as 'single' | 'cluster';
  const redis = values.redis as 'single' | 'sentinel' | 'cluster';
  const base = { clients, channels: 20, perClient: 2, messages, rate: 500, rabbitmq, redis, log };
  log('chaos run 1/2: SocketBridge, clients recover');
  const withRecovery = await runChaos({ ...base, recover: true });
  log('\nchaos run 2/2: the same faults, clients do not recover (plain SCC delivery)');
  const without = await runChaos({ ...base, recover: false });
  log(`\n${table([withRecovery, without])}\n`);
  for (const report of [withRecovery, without]) log(`${report.recover ? 'recovering clients' : 'plain clients (no recovery)'}, per fault:\n${faultTable(report)}\n`);
  log(JSON.stringify({ withRecovery, withoutRecovery: without }));
  // Order must hold through every fault, a Redis failover included (the publisher tries a failed
  // append again in place, its channel's later messages waiting: services/publisher/src/pipeline.ts).
  const orderHeld = withRecovery.outOfOrder === 0 && withRecovery.perFault.every((f) => f.outOfOrder === 0);
  process.exit(withRecovery.lost === 0 && withRecovery.deliveredTwice === 0 && orderHeld ? 0 : 1);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // Ctrl-C: exit through 'exit', where devkit kills every process the run started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
  void main();
}
