import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import socketClusterClient, { type AGClientSocket } from 'socketcluster-client';
import { SocketBridgeClient, tokenAuthEngine } from '@socketbridge/client';
import { waitUntil, withTimeout } from '@socketbridge/common';
import type { ConfirmChannel } from 'amqplib';

export type ClientOptions = Parameters<typeof socketClusterClient.create>[0];

/** Connects a socketcluster-client to a local port (with `token`, signed in) and resolves once the handshake succeeded. */
export async function connectClient(port: number, options: ClientOptions & { token?: string } = {}): Promise<AGClientSocket> {
  const { token, ...rest } = options;
  const socket = socketClusterClient.create({
    hostname: '127.0.0.1',
    port,
    ...(token ? { authEngine: tokenAuthEngine(token) } : {}),
    ...rest,
  });
  await withTimeout(socket.listener('connect').once(), 10000, `a connection to port ${port}`);
  return socket;
}

/** Resolves with the error a worker refused this handshake with; rejects if the handshake succeeded. */
export async function handshakeRefusal(port: number, options: ClientOptions & { token?: string } = {}): Promise<Error> {
  const { token, ...rest } = options;
  const socket = socketClusterClient.create({
    hostname: '127.0.0.1',
    port,
    autoReconnect: false,
    ...(token ? { authEngine: tokenAuthEngine(token) } : {}),
    ...rest,
  });
  try {
    const outcome = await withTimeout(
      Promise.race([
        socket.listener('error').once().then(({ error }) => error),
        socket.listener('connect').once().then(() => undefined),
      ]),
      10000,
      `a handshake answer from port ${port}`,
    );
    if (!outcome) throw new Error('the handshake was accepted');
    return outcome;
  } finally {
    socket.disconnect();
  }
}

/**
 * Opens a raw WebSocket to a cluster port's socket path with `query` and resolves with how the
 * upgrade ended: `status` 101 if it was accepted, else the HTTP status of the refusal and the
 * error name it gave (the `x-socketbridge-error` header, else the body's `Name:` prefix).
 */
export async function upgradeOutcome(port: number, query: Record<string, string>): Promise<{ status: number; errorName?: string; body?: string }> {
  const req = request({
    host: '127.0.0.1',
    port,
    path: `/socketcluster/?${new URLSearchParams(query).toString()}`,
    headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') },
  });
  try {
    return await withTimeout(
      new Promise((resolve, reject) => {
        req.once('upgrade', (_res, socket) => {
          socket.destroy();
          resolve({ status: 101 });
        });
        req.once('response', (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => {
            const header = res.headers['x-socketbridge-error'];
            const errorName = (typeof header === 'string' ? header : undefined) ?? /^(\w+Error):/.exec(body)?.[1];
            resolve({ status: res.statusCode ?? 0, body, ...(errorName ? { errorName } : {}) });
          });
        });
        req.once('error', reject);
        req.end();
      }),
      5000,
      `the upgrade on port ${port}`,
    );
  } finally {
    req.destroy();
  }
}

/** Counts, per channel, how often each sequence number arrived. */
export class Receiver {
  readonly seen = new Map<string, Map<number, number>>();
  /** When each sequence number first arrived, per channel (ms since the epoch). */
  readonly firstArrival = new Map<string, Map<number, number>>();
  private readonly subscribed: Promise<void>;

  constructor(
    readonly socket: AGClientSocket,
    readonly channels: string[],
  ) {
    this.subscribed = Promise.all(
      channels.map(async (name) => {
        const counts = new Map<number, number>();
        const arrivals = new Map<number, number>();
        this.seen.set(name, counts);
        this.firstArrival.set(name, arrivals);
        const channel = socket.subscribe(name);
        void (async () => {
          for await (const data of channel) {
            const seq = (data as { seq?: unknown }).seq;
            if (typeof seq !== 'number') continue;
            counts.set(seq, (counts.get(seq) ?? 0) + 1);
            if (!arrivals.has(seq)) arrivals.set(seq, Date.now());
          }
        })();
        if (!channel.isSubscribed()) await withTimeout(channel.listener('subscribe').once(), 10000, `subscription to ${name}`);
      }),
    ).then(() => undefined);
  }

  ready(): Promise<void> {
    return this.subscribed;
  }

  total(): number {
    let sum = 0;
    for (const counts of this.seen.values()) sum += counts.size;
    return sum;
  }
}

/** Publishes `{seq}` on every channel in rounds, at a bounded rate, until stopped or `maxRounds`. */
export class SequencePublisher {
  readonly acked = new Map<string, number[]>();
  /** When each round started (index = seq), to relate arrivals to events such as a broker kill. */
  readonly roundStartedAt: number[] = [];
  failed = 0;
  rounds = 0;
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    readonly socket: AGClientSocket,
    readonly channels: string[],
    readonly intervalMs = 20,
    readonly maxRounds = 10000,
  ) {
    for (const channel of channels) this.acked.set(channel, []);
  }

  start(): this {
    this.running = true;
    this.loop = (async () => {
      while (this.running && this.rounds < this.maxRounds) {
        const seq = this.rounds++;
        this.roundStartedAt.push(Date.now());
        await Promise.all(
          this.channels.map(async (channel) => {
            try {
              await this.socket.invokePublish(channel, { seq });
              this.acked.get(channel)!.push(seq);
            } catch {
              this.failed++;
            }
          }),
        );
        await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
      }
    })();
    return this;
  }

  /** Resolves when `maxRounds` rounds were published (or stop was called). */
  done(): Promise<void> {
    return this.loop;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  totalAcked(): number {
    let sum = 0;
    for (const list of this.acked.values()) sum += list.length;
    return sum;
  }
}

export interface LossReport {
  sent: number;
  received: number;
  lost: number;
  duplicates: number;
  lostByChannel: Record<string, number>;
}

/** Compares what the publisher got acknowledged with what one receiver holds. */
export function lossReport(publisher: SequencePublisher, receiver: Receiver): LossReport {
  const report: LossReport = { sent: 0, received: 0, lost: 0, duplicates: 0, lostByChannel: {} };
  for (const [channel, seqs] of publisher.acked) {
    const counts = receiver.seen.get(channel) ?? new Map<number, number>();
    let lost = 0;
    for (const seq of seqs) {
      const count = counts.get(seq) ?? 0;
      if (count === 0) lost++;
      else report.duplicates += count - 1;
    }
    report.sent += seqs.length;
    report.received += counts.size;
    report.lost += lost;
    if (lost) report.lostByChannel[channel] = lost;
  }
  return report;
}

/** True once the receiver holds every acked message (a condition to wait on before counting). */
export function caughtUp(publisher: SequencePublisher, receiver: Receiver): boolean {
  return lossReport(publisher, receiver).lost === 0;
}

/** What a recording subscriber saw: each message's `seq` (from `{seq}` bodies), arrival time and offset. */
export interface RecordingSubscriber {
  client: SocketBridgeClient;
  seen: Array<{ seq: number; at: number; offset: string }>;
  gaps: string[];
}

/**
 * A client-library subscriber on one channel that records every delivery and every gap it is told of,
 * reconnecting within half a second (tests of failovers measure the stall, not the client's backoff).
 * The caller closes `client`.
 */
export async function recordingSubscriber(port: number, channel: string, since?: string): Promise<RecordingSubscriber> {
  const client = new SocketBridgeClient({ port, socketOptions: { autoReconnectOptions: { initialDelay: 100, maxDelay: 500, randomness: 100 } } });
  const recording: RecordingSubscriber = { client, seen: [], gaps: [] };
  await client.connected();
  await client.subscribe(channel, {
    ...(since ? { since } : {}),
    onMessage: (envelope) => recording.seen.push({ seq: (envelope.data as { seq: number }).seq, at: Date.now(), offset: envelope.offset }),
    onGap: (gap) => recording.gaps.push(gap.channel),
  });
  return recording;
}

/** `count` recording subscribers on one channel of one worker; the caller closes their clients. */
export async function recordingSubscribers(port: number, channel: string, count: number): Promise<RecordingSubscriber[]> {
  return Promise.all(Array.from({ length: count }, () => recordingSubscriber(port, channel)));
}

/** A producer's steady stream: `sent` so far, and `stop()` to end it and wait for its last confirm. */
export interface ConfirmedStream {
  readonly sent: number;
  stop(): Promise<void>;
}

/**
 * Publishes `{seq}` bodies with message ids `s:<seq>` (a redelivery keeps its history offset), one
 * every `intervalMs`, each confirmed by RabbitMQ before the next, at most `maxRounds` (so the loop is
 * bounded even if the test never stops it): the traffic failover tests run faults under.
 */
export function confirmedStream(channel: ConfirmChannel, exchange: string, routingKey: string, intervalMs = 20, maxRounds = 3000): ConfirmedStream {
  let sent = 0;
  let stopped = false;
  const loop = (async () => {
    for (let seq = 0; seq < maxRounds && !stopped; seq++) {
      channel.publish(exchange, routingKey, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json', messageId: `s:${seq}`, persistent: true });
      await channel.waitForConfirms();
      sent = seq + 1;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    get sent() {
      return sent;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/**
 * The longest silence a recording subscriber saw, from its last arrival before `since` on: a message
 * appended just before a fault may still arrive after it, so the gap straddling the fault alone would
 * miss the stall.
 */
export function longestStall(recording: RecordingSubscriber, since: number): number {
  const from = recording.seen.findLastIndex((m) => m.at < since);
  let stall = 0;
  for (let i = Math.max(from, 0) + 1; i < recording.seen.length; i++) stall = Math.max(stall, recording.seen[i]!.at - recording.seen[i - 1]!.at);
  return stall;
}

/**
 * After a fault is over: lets `more` messages go out (the services must carry them without a
 * restart), stops the stream and waits for its last message to reach every subscriber, saying what
 * each had if it does not. Resolves with the last `seq` sent.
 */
export async function finishStream(stream: ConfirmedStream, subscribers: RecordingSubscriber[], more = 100, timeoutMs = 30000): Promise<number> {
  const from = stream.sent;
  await waitUntilOrThrow(() => stream.sent >= from + more, timeoutMs, `${more} more messages to be sent`);
  await stream.stop();
  const last = stream.sent - 1;
  await waitUntilOrThrow(() => subscribers.every((s) => s.seen.some((m) => m.seq === last)), timeoutMs, 'the last message to reach every client', () =>
    subscribers.map((s) => `${s.seen.length} seen, last ${s.seen.at(-1)?.seq}, ${JSON.stringify(s.client.stats)}`).join('; '),
  );
  return last;
}

async function waitUntilOrThrow(check: () => boolean, timeoutMs: number, what: string, state?: () => string): Promise<void> {
  if (!(await waitUntil(check, timeoutMs, 50))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state ? `: ${state()}` : ''}`);
}
