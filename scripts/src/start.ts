#!/usr/bin/env node
// `npm start`: the whole cluster on this machine, one command.
import { spawn } from 'node:child_process';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { LocalCluster, repoRoot } from '@socketbridge/devkit';
import { checkRabbitMQ, checkRedis } from './preflight.js';
import { LEVEL_NUMBERS, formatLine } from './log-format.js';

const usage = `usage: npm start -- [--brokers N] [--workers N] [--publishers N]
                     [--state-port P] [--broker-port P] [--worker-port P] [--publisher-port P] [--host ADDR]
  Starts the state server, N brokers (default 2), N workers (default 2) and N publishers (default 1);
  ports count up from each base (defaults 7777, 8888, 8000, 3000). Every port listens on 127.0.0.1
  unless --host names another address (0.0.0.0: every interface; the cluster and ops keys still apply). Ctrl-C stops everything in order:
  publishers and workers drain first, then brokers, then the state server.`;

function count(value: string | undefined, fallback: number, flag: string, max = 32): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    console.error(`${flag} must be a whole number from 1 to ${max}; got ${JSON.stringify(value)}\n${usage}`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        brokers: { type: 'string' },
        workers: { type: 'string' },
        'state-port': { type: 'string' },
        'broker-port': { type: 'string' },
        'worker-port': { type: 'string' },
        publishers: { type: 'string' },
        'publisher-port': { type: 'string' },
        host: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(usage);
    return;
  }
  const brokers = count(values.brokers, 2, '--brokers');
  const workers = count(values.workers, 2, '--workers');
  const publishers = count(values.publishers, 1, '--publishers', 8);
  const ports = {
    state: count(values['state-port'], 7777, '--state-port', 65535),
    broker: count(values['broker-port'], 8888, '--broker-port', 65535),
    worker: count(values['worker-port'], 8000, '--worker-port', 65535),
    publisher: count(values['publisher-port'], 3000, '--publisher-port', 65535),
  };

  const host = values.host ?? '127.0.0.1';
  if (!isIP(host)) {
    console.error(`--host must be an IP address such as 127.0.0.1 or 0.0.0.0; got ${JSON.stringify(host)}\n${usage}`);
    process.exit(2);
  }

  const rabbitUrl = process.env.SOCKETBRIDGE_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const redisUrl = process.env.SOCKETBRIDGE_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const missing: string[] = [];
  for (const dep of await Promise.all([checkRabbitMQ(rabbitUrl), checkRedis(redisUrl)])) {
    const where = dep.url.replace(/\/\/[^@/]*@/, '//');
    if (dep.ok) console.log(`✓ ${dep.name} at ${where}: ${dep.detail}`);
    else {
      console.warn(`✗ ${dep.name} is not reachable at ${where} (${dep.detail})`);
      missing.push(dep.name);
    }
  }
  if (missing.length) {
    console.warn(`  The cluster starts without ${missing.join(' and ')}; the publisher waits for them (its /readyz says what it lacks).`);
  }
  // Secrets from the environment win; otherwise devkit makes fresh ones for this run.
  const secrets = Object.fromEntries(
    ['SOCKETBRIDGE_AUTH_KEY', 'SOCKETBRIDGE_API_KEY', 'SCC_AUTH_KEY', 'SOCKETBRIDGE_OPS_KEY'].filter((k) => process.env[k]).map((k) => [k, process.env[k]!]),
  );

  // Every member logs at SOCKETBRIDGE_LOG_LEVEL: devkit learns ports and readiness from the
  // processes (an IPC message, /readyz), never from their log lines.
  const level = process.env.SOCKETBRIDGE_LOG_LEVEL || 'info';
  if (LEVEL_NUMBERS[level] === undefined) {
    console.error(`SOCKETBRIDGE_LOG_LEVEL must be one of ${Object.keys(LEVEL_NUMBERS).join(', ')}; got ${JSON.stringify(level)}`);
    process.exit(2);
  }
  const cluster = new LocalCluster({
    // A shorter start-up delay than production's 5 s: every broker here starts before any worker.
    timers: { SCC_STATE_SERVER_STARTUP_DELAY: '1000', SCC_STATE_SERVER_SCALE_OUT_DELAY: '1000' },
    env: {
      SOCKETBRIDGE_LOG_LEVEL: level,
      SOCKETBRIDGE_RABBITMQ_URL: rabbitUrl,
      SOCKETBRIDGE_REDIS_URL: redisUrl,
      // A local demo: the seed's fake-data route is on, behind the admin key like every route that can write to any channel.
      SOCKETBRIDGE_TEST_MODE: 'true',
      ...secrets,
    },
    ports,
    host,
    // A publisher's /readyz waits for RabbitMQ and Redis: without them it counts as started once it answers.
    ...(missing.length ? { publishersStartedWhen: '/healthz' as const } : {}),
    onLine: (name, line) => process.stdout.write(formatLine(name, line)),
    ownProcessGroup: true,
  });

  const members = () => [cluster.state, ...cluster.brokers, ...cluster.workers, ...cluster.publishers];
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      console.log('\nsecond interrupt: killing everything');
      await cluster.stop();
      process.exit(1);
    }
    stopping = true;
    console.log(`\n${signal}: stopping the cluster (publishers, workers, brokers, then the state server)…`);
    await cluster.shutdown();
    console.log('stopped.');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  try {
    await cluster.startState(ports.state);
    for (let i = 0; i < brokers; i++) await cluster.addBroker();
    for (let i = 0; i < workers; i++) await cluster.addWorker();
    for (let i = 0; i < publishers; i++) await cluster.addPublisher();
    await cluster.waitForMembers(60000);
  } catch (error) {
    console.error(`the cluster did not come up: ${(error as Error).message}`);
    await cluster.stop();
    process.exit(1);
  }

  const lines = [
    '',
    `SocketBridge cluster ready: state server, ${brokers} broker(s), ${workers} worker(s), ${publishers} publisher(s).`,
    '  connect clients (socketcluster-client) to any worker:',
    ...cluster.workers.map((w) => `    ws://127.0.0.1:${w.port}/socketcluster/`),
    ...cluster.publishers.map((p) => `  publisher API:   http://127.0.0.1:${p.port}/  (OpenAPI at /docs)`),
    `  admin API key:   ${cluster.env.SOCKETBRIDGE_API_KEY}  (header x-api-key)`,
    `  console:         http://127.0.0.1:${cluster.publishers[0]!.port}/console?key=${cluster.env.SOCKETBRIDGE_API_KEY}`,
    `  RabbitMQ:        publish to exchange "socketbridge" with the channel as routing key (npm run amqp-publish -- <channel> '<json>')`,
    `  cluster state:   http://127.0.0.1:${cluster.state.port}/state  (ops endpoints want the ops key)`,
    `  metrics:         http://127.0.0.1:<port>/metrics on every process (ports ${members().map((p) => p.port).join(', ')})`,
    `  ops key:         ${cluster.env.SOCKETBRIDGE_OPS_KEY}  (header Authorization: Bearer <key>, for /metrics, /cluster, /state)`,
    `  listening on:    ${host}${host === '127.0.0.1' ? ' only (--host to change)' : ''}`,
    `  processes:       ${members().map((p) => `${p.name}=${p.child.pid}`).join(' ')}`,
    '  Ctrl-C stops everything.',
    '',
  ];
  console.log(lines.join('\n'));
  for (const member of members()) {
    void member.exited.then(({ code, signal }) => {
      if (!stopping) console.error(`${member.name} exited unexpectedly (code ${code}, signal ${signal}); the rest keeps running`);
    });
  }
  // The operator's local mode declares the example SocketBridges (manifests/examples); a failure is reported and the cluster runs on.
  await new Promise<void>((resolve) => {
    const apply = spawn(process.execPath, [`${repoRoot}operator/dist/cli.js`, 'apply', '-f', `${repoRoot}manifests/examples`], {
      env: { ...process.env, SOCKETBRIDGE_RABBITMQ_URL: rabbitUrl, SOCKETBRIDGE_REDIS_URL: redisUrl },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    apply.once('error', (error) => {
      console.warn(`example SocketBridges not applied: ${error.message}`);
      resolve();
    });
    apply.once('exit', (code) => {
      if (code === 0) console.log('example SocketBridges applied (npm run bridge -- get shows them)');
      else console.warn(`example SocketBridges: npm run bridge -- apply exited with ${code}; the cluster runs on`);
      resolve();
    });
  });
}

void main();
