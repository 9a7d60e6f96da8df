import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmqpProducer, LocalCluster, PublisherApi, devSecrets, killAll, repoRoot, waitFor, type RabbitNames } from '@socketbridge/devkit';
import type { Summary } from '../src/stats.js';

// This file's own RabbitMQ names, so no other test file's queue or exchange is shared.
const run = randomUUID().slice(0, 8);
const names: RabbitNames = {
  SOCKETBRIDGE_QUEUE: `sub-test.${run}`,
  SOCKETBRIDGE_EXCHANGE: `sub-test-x.${run}`,
  SOCKETBRIDGE_DEAD_LETTER_QUEUE: `sub-test-dlq.${run}`,
  SOCKETBRIDGE_DEAD_LETTER_EXCHANGE: `sub-test-dlx.${run}`,
};

const main = `${repoRoot}services/subscriber/dist/main.js`;
const WAIT_MS = 20000;

interface Published {
  id: string;
  offset: string;
  channel: string;
}

interface Line {
  channel: string;
  envelope: { id: string; offset: string; prev: string; ts: number; data: unknown };
}

/** One run of the built CLI, with its stdout lines and stderr text kept for waiting on. */
class Socketsub {
  readonly stdout: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private partial = '';

  constructor(readonly args: string[]) {
    this.child = spawn(process.execPath, [main, ...args], {
      cwd: repoRoot,
      // The defaults come from the flags here, never from the caller's shell.
      env: { ...process.env, SOCKETBRIDGE_WORKER_URL: '', SOCKETBRIDGE_PUBLISHER_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.child.stdout!.on('data', (chunk: Buffer) => {
      const text = this.partial + chunk.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop()!;
      this.stdout.push(...lines.filter((line) => line.trim()));
    });
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  json<T = Line>(): T[] {
    return this.stdout.map((line) => JSON.parse(line) as T);
  }

  describe(): string {
    return `socketsub ${this.args.join(' ')}\n--- stdout\n${this.stdout.slice(-20).join('\n')}\n--- stderr\n${this.stderr.slice(-3000)}`;
  }

  /** Waits until `check` holds; fails at once, with the output, if the process exits first. */
  async until(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    await waitFor(
      () => {
        if (check()) return true;
        if (!this.running) throw new Error(`exited before ${what}:\n${this.describe()}`);
        return false;
      },
      timeoutMs,
      `${what}:\n${this.describe()}`,
    );
  }

  untilStderr(text: string): Promise<void> {
    return this.until(() => this.stderr.includes(text), `"${text}" on stderr`);
  }

  /** Resolves with how it exited; kills it and fails if it does not within the timeout. */
  async exit(timeoutMs = WAIT_MS): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`did not exit within ${timeoutMs} ms:\n${this.describe()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

const running = new Set<Socketsub>();
let cluster: LocalCluster;
let api: PublisherApi;
let publisherUrl: string;
let workerUrls: string[];

beforeAll(async () => {
  cluster = await LocalCluster.start({
    brokers: 2,
    workers: 2,
    publishers: 1,
    // Every test here signs clients up and in: keep the per-IP auth limit out of the way.
    env: { ...names, SOCKETBRIDGE_TEST_MODE: 'true', SOCKETBRIDGE_AUTH_RATE_LIMIT: '10000' },
  });
  publisherUrl = `http://127.0.0.1:${cluster.publishers[0]!.port}`;
  api = new PublisherApi(publisherUrl, devSecrets.SOCKETBRIDGE_API_KEY);
  workerUrls = cluster.workers.map((w) => `ws://127.0.0.1:${w.port}`);
});

afterAll(async () => {
  await Promise.all([...running].map(async (sub) => {
    sub.kill('SIGKILL');
    await sub.exited;
  }));
  await cluster?.stop();
  await killAll();
  const producer = await AmqpProducer.connect();
  await producer.deleteTopology(names);
  await producer.close();
});

async function publish(channel: string, data: unknown): Promise<Published> {
  const { status, body } = await api.request<Published>('POST', '/v1/publish', { channel, data });
  expect(status).toBe(202);
  return body;
}

/** Fake data through the test-mode route: `count` envelopes with data {fake, n, value}, in order. */
async function publishFake(channel: string, count: number): Promise<Published[]> {
  const { status, body } = await api.request<{ envelopes: Published[] }>('GET', `/v1/publish-data-over-ch?channel=${encodeURIComponent(channel)}&count=${count}`);
  expect(status).toBe(200);
  return body.envelopes;
}

/** An HS256 JWT as the publisher makes them, signed with `key`, expiring at `exp` (seconds since the epoch). */
function signToken(key: string, claims: { sub: string; channels: string[] }, exp: number): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ ...claims, iat: exp - 3600, exp })}`;
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`;
}


describe('socketsub', () => {
  it('signs in with email and password and prints what arrives on its own channel as JSON lines', async () => {
    const client = await api.createClient('login');
    const sub = new Socketsub(['--url', workerUrls[0]!, '--email', client.email, '--password', client.password, '--publisher', publisherUrl]);
    await sub.untilStderr(`subscribed to ${client.channel}`);
    expect(sub.stderr).toContain(`signed in as client ${client.clientId}`);
    expect(sub.stderr).toContain(`connected to ${workerUrls[0]}/ (signed in)`);

    const sent: Published[] = [];
    for (let n = 0; n < 3; n++) sent.push(await publish(client.channel, { n }));
    await sub.until(() => sub.stdout.length >= 3, 'three messages');
    // toMatchObject: the envelope may carry more than these fields (it is the publisher's to extend).
    expect(sub.json()).toMatchObject(
      sent.map(({ id, offset }, n) => ({ channel: client.channel, envelope: { id, offset, ts: expect.any(Number), data: { n } } })),
    );
    for (const { envelope } of sub.json()) expect(Math.abs(Date.now() - envelope.ts)).toBeLessThan(60000);

    sub.kill('SIGINT');
    expect(await sub.exit()).toEqual({ code: 0, signal: null });
    expect(sub.stdout).toHaveLength(3);
  });

  it('with --token subscribes to client.<sub> from the token and stops after --count', async () => {
    const client = await api.createClient('token');
    const sub = new Socketsub(['--url', workerUrls[1]!, '--token', client.token, '--count', '5']);
    await sub.untilStderr(`subscribed to ${client.channel}`);
    const sent = await publishFake(client.channel, 5);
    expect(await sub.exit()).toEqual({ code: 0, signal: null });
    const lines = sub.json();
    expect(lines.map((l) => l.envelope.offset)).toEqual(sent.map((e) => e.offset));
    expect(lines.map((l) => l.channel)).toEqual(sent.map(() => client.channel));
    expect(lines.map((l) => l.envelope.data)).toEqual(sent.map((_, n) => expect.objectContaining({ fake: true, n })));
    // The envelopes chain: each names the one before it.
    for (let n = 1; n < lines.length; n++) expect(lines[n]!.envelope.prev).toBe(lines[n - 1]!.envelope.offset);
    expect(sub.stderr).not.toContain('gap on');
  });

  it('--stats --count prints progress on stderr and one JSON summary on stdout: nothing recovered, no gap, no duplicate', async () => {
    const client = await api.createClient('stats');
    const sub = new Socketsub(['--url', workerUrls[0]!, '--token', client.token, '--stats', '--count', '50']);
    await sub.untilStderr(`subscribed to ${client.channel}`);
    await publishFake(client.channel, 50);
    expect(await sub.exit()).toEqual({ code: 0, signal: null });
    expect(sub.stdout).toHaveLength(1);
    const [summary] = sub.json<Summary>();
    expect(summary).toEqual({
      received: 50,
      rate: expect.any(Number),
      p50Ms: expect.any(Number),
      p99Ms: expect.any(Number),
      maxMs: expect.any(Number),
      duplicates: 0,
      recovered: 0,
      gaps: 0,
    });
    expect(summary!.rate).toBeGreaterThan(0);
    expect(summary!.p50Ms!).toBeLessThanOrEqual(summary!.p99Ms!);
    expect(summary!.p99Ms!).toBeLessThanOrEqual(summary!.maxMs!);
    // The last progress line, written as the run stopped.
    expect(sub.stderr).toMatch(/msg\/s \| total 50 \| p50 (\d+ ms|-) p99 (\d+ ms|-) max (\d+ ms|-) \| recovered 0 gaps 0\n/);
  });

  // On the client's own channel: the history of `broadcast` is shared by every local cluster on this Redis.
  it('--no-recover --clients 3: plain delivery of every message to every socket, nothing recovered', async () => {
    const client = await api.createClient('no-recover');
    const sub = new Socketsub(['--url', workerUrls[1]!, '--token', client.token, '--clients', '3', '--no-recover', '--count', String(3 * 30)]);
    await sub.untilStderr('all 3 sockets subscribed');
    await publishFake(client.channel, 30);
    expect(await sub.exit()).toEqual({ code: 0, signal: null });
    expect(sub.json<Summary>()).toEqual([expect.objectContaining({ received: 3 * 30, duplicates: 0, recovered: 0, gaps: 0 })]);
    expect(sub.stderr).toMatch(/sockets 3\/3 connected 3 subscribed \| .* \| recovered 0 gaps 0\n/);
  });

  it('--clients 20 on broadcast: every socket subscribes and receives every message, once', async () => {
    const client = await api.createClient('load');
    const perSocket = 10;
    const sub = new Socketsub(['--url', workerUrls[1]!, '--token', client.token, '--clients', '20', '--channel', 'broadcast', '--count', String(20 * perSocket)]);
    await sub.untilStderr('all 20 sockets subscribed');
    await publishFake('broadcast', perSocket);
    expect(await sub.exit()).toEqual({ code: 0, signal: null });
    // 200 with no duplicate among 10 distinct offsets per socket means each of the 20 sockets had all 10.
    expect(sub.json<Summary>()).toEqual([expect.objectContaining({ received: 20 * perSocket, duplicates: 0 })]);
    expect(sub.stderr).toContain('sockets 20/20 connected 20 subscribed | ');
  });

  it('--duration stops a run that receives nothing, with an empty summary', async () => {
    const client = await api.createClient('duration');
    const sub = new Socketsub(['--url', workerUrls[0]!, '--token', client.token, '--stats', '--duration', '1']);
    expect(await sub.exit()).toEqual({ code: 0, signal: null });
    expect(sub.json<Summary>()).toEqual([{ received: 0, rate: 0, p50Ms: null, p99Ms: null, maxMs: null, duplicates: 0, recovered: 0, gaps: 0 }]);
  });
});

describe('socketsub refusals', () => {
  it('bad flags exit 2 with the reason and the usage', async () => {
    const runs = [
      new Socketsub(['--clients', '0', '--channel', 'broadcast']),
      new Socketsub(['--no-such-flag']),
      new Socketsub(['--url', 'http://127.0.0.1:8000', '--channel', 'broadcast']),
    ];
    for (const sub of runs) expect(await sub.exit(), sub.describe()).toEqual({ code: 2, signal: null });
    expect(runs[0]!.stderr).toContain('--clients must be a whole number from 1 to 10000, not "0"');
    expect(runs[1]!.stderr).toContain("Unknown option '--no-such-flag'");
    expect(runs[2]!.stderr).toContain('--url must be a ws:// or wss:// URL');
    for (const sub of runs) {
      expect(sub.stderr).toContain('Usage: socketsub [options]');
      expect(sub.stdout).toEqual([]);
    }
  });

  it('a wrong password exits 1 with the publisher\'s message', async () => {
    const client = await api.createClient('wrong-password');
    const sub = new Socketsub(['--url', workerUrls[0]!, '--email', client.email, '--password', 'not the password', '--publisher', publisherUrl]);
    expect(await sub.exit()).toEqual({ code: 1, signal: null });
    expect(sub.stderr).toContain('login refused (401 Unauthorized): wrong email or password');
    expect(sub.stdout).toEqual([]);
  });

  it("another client's channel is refused and reported; with nothing subscribed it exits 1", async () => {
    const [a, b] = [await api.createClient('A'), await api.createClient('B')];
    const onlyTheirs = new Socketsub(['--url', workerUrls[0]!, '--token', a.token, '--channel', b.channel]);
    const anonymous = new Socketsub(['--url', workerUrls[1]!, '--channel', 'broadcast']);
    expect(await onlyTheirs.exit()).toEqual({ code: 1, signal: null });
    expect(onlyTheirs.stderr).toContain(`subscription to ${b.channel} refused: SubscribeRefusedError: ${b.channel} belongs to another client`);
    expect(onlyTheirs.stderr).toContain('no channel could be subscribed');
    expect(await anonymous.exit()).toEqual({ code: 1, signal: null });
    expect(anonymous.stderr).toContain('subscription to broadcast refused: SubscribeRefusedError: broadcast needs a signed-in client');
  });

  it('a refused channel next to an allowed one is reported and the run goes on', async () => {
    const [a, b] = [await api.createClient('A'), await api.createClient('B')];
    const sub = new Socketsub(['--url', workerUrls[1]!, '--token', a.token, '--channel', b.channel, '--channel', a.channel]);
    await sub.untilStderr(`subscribed to ${a.channel}`);
    await sub.untilStderr(`subscription to ${b.channel} refused`);
    const sent = await publish(a.channel, { still: 'here' });
    await sub.until(() => sub.stdout.length >= 1, 'the message on the allowed channel');
    expect(sub.json()).toMatchObject([{ channel: a.channel, envelope: { id: sent.id, offset: sent.offset, ts: expect.any(Number), data: { still: 'here' } } }]);
    sub.kill('SIGTERM');
    expect(await sub.exit()).toEqual({ code: 0, signal: null });
  });

  it('forged and expired tokens are refused at the handshake: exit 1 with the error', async () => {
    const a = await api.createClient('A');
    const inAnHour = Math.floor(Date.now() / 1000) + 3600;
    const forged = new Socketsub(['--url', workerUrls[0]!, '--token', signToken('not-the-cluster-key-not-the-cluster-key', { sub: a.clientId, channels: [a.channel] }, inAnHour)]);
    const expired = new Socketsub(['--url', workerUrls[0]!, '--token', signToken(devSecrets.SOCKETBRIDGE_AUTH_KEY!, { sub: a.clientId, channels: [a.channel] }, inAnHour - 7200)]);
    expect(await forged.exit()).toEqual({ code: 1, signal: null });
    expect(forged.stderr).toContain('handshake refused: AuthTokenInvalidError: the token is not valid');
    expect(await expired.exit()).toEqual({ code: 1, signal: null });
    expect(expired.stderr).toContain('handshake refused: AuthTokenExpiredError: the token has expired');
  });
});
