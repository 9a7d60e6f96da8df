import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './processes.js';

const run = promisify(execFile);

/** The machine's RabbitMQ and Redis, as the services' own defaults name them. */
export const MACHINE_RABBITMQ_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const MACHINE_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * The RabbitMQ and Redis that tests (and every process they start) use: the test run's own,
 * from `startTestServices` through the environment, else the machine's.
 */
export function rabbitmqUrl(): string {
  return process.env.SOCKETBRIDGE_RABBITMQ_URL ?? MACHINE_RABBITMQ_URL;
}

/** The test run's Redis, optionally one numbered database of it (for suites kept apart from the rest). */
export function redisUrl(db?: number): string {
  const base = process.env.SOCKETBRIDGE_REDIS_URL ?? MACHINE_REDIS_URL;
  if (db === undefined) return base;
  const url = new URL(base);
  url.pathname = `/${db}`;
  return url.toString();
}

export interface TestServices {
  /** SOCKETBRIDGE_REDIS_URL and SOCKETBRIDGE_RABBITMQ_URL for the run. */
  env: Record<string, string>;
  stop: () => Promise<void>;
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A Redis server and a RabbitMQ virtual host of the test run's own, so tests never see what else
 * lives in the machine's Redis and RabbitMQ (the bridges `npm start` leaves in Redis database 0,
 * its queues bound with `#` on the `socketbridge` exchange), and leave nothing behind in them.
 * The machine's RabbitMQ server is shared (a second broker would take a minute to boot); the vhost
 * keeps its exchanges, queues and bindings apart.
 */
export async function startTestServices(): Promise<TestServices> {
  const dir = await mkdtemp(join(tmpdir(), 'socketbridge-test-redis-'));
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  const redisExited = new Promise<void>((resolve) => redis.once('exit', () => resolve()));
  redis.once('error', () => undefined);
  await waitFor(() => portAnswers(port), 10000, `the test run's redis-server on port ${port}`);

  const vhost = `socketbridge-test-${randomBytes(4).toString('hex')}`;
  await run('rabbitmqctl', ['add_vhost', vhost]);
  await run('rabbitmqctl', ['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);

  const rabbit = new URL(process.env.SOCKETBRIDGE_RABBITMQ_URL ?? MACHINE_RABBITMQ_URL);
  rabbit.pathname = `/${encodeURIComponent(vhost)}`;
  return {
    env: { SOCKETBRIDGE_REDIS_URL: `redis://127.0.0.1:${port}`, SOCKETBRIDGE_RABBITMQ_URL: rabbit.toString() },
    async stop() {
      // Deleting the vhost deletes every exchange and queue the run declared in it.
      await run('rabbitmqctl', ['delete_vhost', vhost]).catch(() => undefined);
      redis.kill('SIGKILL');
      await redisExited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
