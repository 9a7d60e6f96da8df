#!/usr/bin/env node
// `npm run chaos`: the fault-injection run. Real processes, real RabbitMQ and Redis: messages flow
// to recovering clients while a worker, a broker and the active publisher are killed, the state
// server restarts and RabbitMQ drops the publisher's connection. Then the same run without recovery.
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { SocketBridgeClient } from '@socketbridge/client';
import { AmqpProducer, LocalCluster, TcpBalancer, getJson, opsFetch, rabbitNames, waitFor, type ManagedProcess } from '@socketbridge/devkit';

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
  log?: (line: string) => void;
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

async function closeRabbitConnectionOf(cluster: LocalCluster, publisher: ManagedProcess): Promise<boolean> {
  const { instanceId } = await getJson<{ instanceId: string }>(`http://127.0.0.1:${publisher.port}/cluster`, cluster.env.SOCKETBRIDGE_OPS_KEY);
  const { stdout } = await run('rabbitmqctl', ['list_connections', 'pid', 'client_properties', '-q', '--no-table-headers']);
  const line = stdout.split('\n').find((l) => l.includes(instanceId));
  if (!line) return false;
  await run('rabbitmqctl', ['close_connection', line.split('\t')[0]!, 'chaos: connection closed by the broker']);
  return true;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const names = rabbitNames('chaos');
  const prefix = `chaos-${randomUUID().slice(0, 6)}`;
  const channels = Array.from({ length: options.channels }, (_, i) => `${prefix}.room-${i}`);
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
    },
  });
  const balancer = new TcpBalancer(() => cluster.live(cluster.workers).map((w) => w.port));
  await balancer.start();
  const producer = await AmqpProducer.connect();
  const faults: string[] = [];
  const clients: Array<{ client: SocketBridgeClient; seen: Map<string, number[]> }> = [];
  try {
    for (let i = 0; i < options.clients; i++) {
      const client = new SocketBridgeClient({
        port: balancer.port,
        recover: options.recover,
        socketOptions: { autoReconnectOptions: { initialDelay: 200, maxDelay: 1000, randomness: 300 } },
      });
      await client.connected();
      const seen = new Map<string, number[]>();
      for (let k = 0; k < options.perClient; k++) {
        const channel = channels[(i + k) % channels.length]!;
        seen.set(channel, []);
        await client.subscribe(channel, { onMessage: (envelope) => seen.get(channel)!.push((envelope.data as { seq: number }).seq) });
      }
      clients.push({ client, seen });
    }
    log(`${options.clients} clients subscribed (${options.perClient} channels each) through the balancer; sending ${options.messages} messages at ${options.rate}/s`);

    const perChannel = Math.ceil(options.messages / channels.length);
    let sent = 0;
    const sending = (async () => {
      const batch = Math.max(1, Math.round(options.rate / 20));
      for (let seq = 0; seq < perChannel; seq++) {
        for (const channel of channels) {
          producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from(JSON.stringify({ seq })), {
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
    if (current && (await closeRabbitConnectionOf(cluster, current))) fault(`RabbitMQ closed ${current.name}'s connection`);

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
      seconds: 0,
    };
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
    await producer.deleteTopology(names).catch(() => undefined);
    await producer.close();
    await cluster.stop();
  }
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
  const base = { clients: 200, channels: 20, perClient: 2, messages: 20000, rate: 500, log };
  log('chaos run 1/2: SocketBridge, clients recover');
  const withRecovery = await runChaos({ ...base, recover: true });
  log('\nchaos run 2/2: the same faults, clients do not recover (plain SCC delivery)');
  const without = await runChaos({ ...base, recover: false });
  log(`\n${table([withRecovery, without])}\n`);
  log(JSON.stringify({ withRecovery, withoutRecovery: without }));
  process.exit(withRecovery.lost === 0 && withRecovery.deliveredTwice === 0 && withRecovery.outOfOrder === 0 ? 0 : 1);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // Ctrl-C: exit through 'exit', where devkit kills every process the run started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
  void main();
}
