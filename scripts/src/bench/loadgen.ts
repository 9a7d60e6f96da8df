#!/usr/bin/env node
// The client load: N sockets spread over the server's ports, each subscribed to one channel.
// Counts deliveries, duplicates and end-to-end latency (receive time − producer's send time).
// Recording allocates nothing: both sides deliver a channel in order, so each client keeps its last
// sequence number, and latencies go into a fixed histogram. Commands on stdin: `reset` (a new
// measurement window; collects garbage first, so a major GC does not start inside it), `report`
// (counts as JSON), `report histogram` (with the latency histogram), `exit`. Run with --expose-gc.
// The bench may split the clients over several of these processes: BENCH_FIRST is the index of
// this process's first client among all of them.
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import socketClusterClient from 'socketcluster-client';
import { SocketBridgeClient } from '@socketbridge/client';
import WebSocket from 'ws';
import { bucketsPerMs, histogramBuckets as buckets, preciseNow } from './proc.js';

const kind = process.env.BENCH_KIND as 'sb' | 'ws';
const ports = process.env.BENCH_PORTS!.split(',').map(Number);
const clients = Number(process.env.BENCH_CLIENTS);
const first = Number(process.env.BENCH_FIRST ?? 0);
const channels = process.env.BENCH_CHANNELS!.split(',');

/** Latency histogram: one bucket per millisecond, then an overflow count and the maximum. */
const histogram = new Uint32Array(buckets);
let overflow = 0;
let max = -1;
/** SocketBridge only: the part after the publisher, receive time − the envelope's `ts` (publisher's receipt). */
const hop = new Uint32Array(buckets);
/** Per client, the highest sequence number it has received in this window (-1: none yet). */
const last = new Int32Array(clients).fill(-1);
/** Per client, the channel it subscribed to. */
const channelOf = Array.from({ length: clients }, (_, k) => channels[(first + k) % channels.length]!);
let deliveries = 0;
/** Sequence numbers at or below one the client already had: repeated or out of order. */
let duplicates = 0;
/** Messages of a channel the client did not subscribe to. */
let misrouted = 0;
let firstAt = 0;
let lastAt = 0;
/** This process's garbage collection pauses in the window: a pause holds every delivery behind it. */
let gcPauseMs = 0;
let gcMaxPauseMs = 0;
let windowStart = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.startTime < windowStart) continue; // the collection `reset` asked for
    gcPauseMs += entry.duration;
    gcMaxPauseMs = Math.max(gcMaxPauseMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });

interface Body {
  ch: string;
  seq: number;
  t: number;
}

function record(client: number, body: Body, publishedAt?: number): void {
  const now = preciseNow();
  if (publishedAt !== undefined) hop[Math.min(buckets - 1, Math.max(0, Math.floor((now - publishedAt) * bucketsPerMs)))]!++;
  if (!firstAt) firstAt = now;
  lastAt = now;
  if (body.ch !== channelOf[client]) misrouted++;
  else if (body.seq <= last[client]!) duplicates++;
  else {
    last[client] = body.seq;
    deliveries++;
  }
  const ms = Math.max(0, now - body.t);
  const bucket = Math.floor(ms * bucketsPerMs);
  if (bucket < buckets) histogram[bucket]!++;
  else overflow++;
  if (ms > max) max = Math.round(ms * 10) / 10;
}

function reset(): void {
  deliveries = duplicates = misrouted = overflow = firstAt = lastAt = 0;
  max = -1;
  histogram.fill(0);
  hop.fill(0);
  last.fill(-1);
  globalThis.gc?.();
  gcPauseMs = gcMaxPauseMs = 0;
  windowStart = performance.now();
}

/** The non-empty buckets as [bucket, count] pairs, for the bench to merge across load generators. */
function sparse(counts: Uint32Array): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let bucket = 0; bucket < buckets; bucket++) if (counts[bucket]) pairs.push([bucket, counts[bucket]!]);
  return pairs;
}

// SocketBridge clients are what users run: the client library, recovering after any reconnect.
const libraryClients: SocketBridgeClient[] = [];
let reconnects = 0;

/** A bare socketcluster-client (no ordering, no recovery): what the client library costs, by difference. */
async function connectRaw(i: number, port: number, channel: string): Promise<void> {
  const socket = socketClusterClient.create({ hostname: '127.0.0.1', port });
  const sub = socket.subscribe(channel);
  void (async () => {
    for await (const envelope of sub) record(i, (envelope as { data: Body; ts: number }).data, (envelope as { ts: number }).ts);
  })();
  await sub.listener('subscribe').once();
}

/**
 * SocketBridge's wire protocol on a bare ws client, as light as the baseline's client: handshake,
 * subscribe, answer pings, parse each publish. With it both sides' clients cost the same, so a
 * latency difference is the servers' (no ordering or recovery here: loss and duplicates still count).
 */
async function connectWire(i: number, port: number, channel: string): Promise<void> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/socketcluster/`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  await new Promise<void>((resolve, reject) => {
    socket.on('message', (raw) => {
      const text = raw.toString();
      if (text === '') return void socket.send(''); // ping
      const packet = JSON.parse(text) as { event?: string; rid?: number; error?: unknown; data?: { data?: { ts: number; data: Body } } };
      if (packet.event === '#publish') record(i, packet.data!.data!.data, packet.data!.data!.ts);
      else if (packet.rid === 1) socket.send(JSON.stringify({ event: '#subscribe', data: { channel }, cid: 2 }));
      else if (packet.rid === 2 && packet.error) reject(new Error(JSON.stringify(packet.error)));
      else if (packet.rid === 2) resolve();
    });
    socket.send(JSON.stringify({ event: '#handshake', data: {}, cid: 1 }));
  });
}

async function connectSocketBridge(i: number, port: number, channel: string): Promise<void> {
  if (process.env.BENCH_SB_CLIENT === 'raw') return connectRaw(i, port, channel);
  if (process.env.BENCH_SB_CLIENT === 'wire') return connectWire(i, port, channel);
  const client = new SocketBridgeClient({ port });
  libraryClients.push(client);
  await client.connected(60000);
  void (async () => {
    for await (const _event of client.socket.listener('connect')) reconnects++;
  })();
  await client.subscribe(channel, { onMessage: (envelope) => record(i, envelope.data as Body, envelope.ts) });
}

async function connectWs(i: number, port: number, channel: string): Promise<void> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  await new Promise<void>((resolve) => {
    socket.once('message', () => resolve());
    socket.send(JSON.stringify({ subscribe: channel }));
  });
  socket.on('message', (data) => record(i, JSON.parse(data.toString()) as Body));
}

for (let start = 0; start < clients; start += 100) {
  await Promise.all(
    Array.from({ length: Math.min(100, clients - start) }, (_, k) => {
      const i = start + k;
      const port = ports[(first + i) % ports.length]!;
      return kind === 'sb' ? connectSocketBridge(i, port, channelOf[i]!) : connectWs(i, port, channelOf[i]!);
    }),
  );
}
process.stdout.write(`${JSON.stringify({ msg: 'ready', clients })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'reset') {
    reset();
    process.stdout.write(`${JSON.stringify({ msg: 'reset' })}\n`);
  } else if (line === 'report' || line === 'report histogram') {
    process.stdout.write(
      `${JSON.stringify({
        msg: 'report',
        deliveries,
        duplicates,
        misrouted,
        firstAt,
        lastAt,
        histogram: line === 'report histogram' ? sparse(histogram) : [],
        hop: line === 'report histogram' ? sparse(hop) : [],
        overflow,
        max: max < 0 ? null : max,
        recovered: libraryClients.reduce((sum, c) => sum + c.stats.recovered, 0),
        reconnects,
        gcPauseMs,
        gcMaxPauseMs,
      })}\n`,
    );
  } else if (line === 'exit') {
    process.exit(0);
  }
}
// stdin closed: the bench that started us is gone.
process.exit(0);
