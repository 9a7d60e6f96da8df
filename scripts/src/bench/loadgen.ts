#!/usr/bin/env node
// The client load: N sockets spread over the server's ports, each subscribed to one of the
// channels. Counts deliveries, duplicates and end-to-end latency (receive time − producer's send
// time). Commands on stdin: `reset` (new measurement window), `report` (print JSON), `exit`.
import { createInterface } from 'node:readline';
import socketClusterClient from 'socketcluster-client';
import { SocketBridgeClient } from '@socketbridge/client';
import WebSocket from 'ws';

const kind = process.env.BENCH_KIND as 'sb' | 'ws';
const ports = process.env.BENCH_PORTS!.split(',').map(Number);
const clients = Number(process.env.BENCH_CLIENTS);
const channels = process.env.BENCH_CHANNELS!.split(',');

let deliveries = 0;
let duplicates = 0;
let latencies: number[] = [];
let seen = new Map<string, Set<number>>();
let firstAt = 0;
let lastAt = 0;

function record(client: number, body: { ch: string; seq: number; t: number }): void {
  const now = Date.now();
  if (!firstAt) firstAt = now;
  lastAt = now;
  const key = `${client}:${body.ch}`;
  let set = seen.get(key);
  if (!set) seen.set(key, (set = new Set()));
  if (set.has(body.seq)) duplicates++;
  else {
    set.add(body.seq);
    deliveries++;
  }
  if (latencies.length < 2_000_000) latencies.push(now - body.t);
}

// SocketBridge clients are what users run: the client library, recovering after any reconnect.
const libraryClients: SocketBridgeClient[] = [];
let reconnects = 0;

/** A bare socketcluster-client (no ordering, no recovery): what the client library costs, by difference. */
async function connectRaw(i: number, port: number, channel: string): Promise<void> {
  const socket = socketClusterClient.create({ hostname: '127.0.0.1', port });
  const sub = socket.subscribe(channel);
  void (async () => {
    for await (const envelope of sub) record(i, (envelope as { data: { ch: string; seq: number; t: number } }).data);
  })();
  await sub.listener('subscribe').once();
}

async function connectSocketBridge(i: number, port: number, channel: string): Promise<void> {
  if (process.env.BENCH_SB_CLIENT === 'raw') return connectRaw(i, port, channel);
  const client = new SocketBridgeClient({ port });
  libraryClients.push(client);
  await client.connected(60000);
  void (async () => {
    for await (const _event of client.socket.listener('connect')) reconnects++;
  })();
  await client.subscribe(channel, { onMessage: (envelope) => record(i, envelope.data as { ch: string; seq: number; t: number }) });
}

async function connectWs(i: number, port: number, channel: string): Promise<void> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  await new Promise<void>((resolve) => {
    socket.once('message', () => resolve());
    socket.send(JSON.stringify({ subscribe: channel }));
  });
  socket.on('message', (data) => record(i, JSON.parse(data.toString()) as { ch: string; seq: number; t: number }));
}

for (let start = 0; start < clients; start += 100) {
  await Promise.all(
    Array.from({ length: Math.min(100, clients - start) }, (_, k) => {
      const i = start + k;
      const port = ports[i % ports.length]!;
      const channel = channels[i % channels.length]!;
      return kind === 'sb' ? connectSocketBridge(i, port, channel) : connectWs(i, port, channel);
    }),
  );
}
process.stdout.write(`${JSON.stringify({ msg: 'ready', clients })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'reset') {
    deliveries = 0;
    duplicates = 0;
    latencies = [];
    seen = new Map();
    firstAt = lastAt = 0;
  } else if (line === 'report') {
    latencies.sort((a, b) => a - b);
    const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? null;
    process.stdout.write(
      `${JSON.stringify({
        msg: 'report',
        deliveries,
        duplicates,
        firstAt,
        lastAt,
        p50: at(0.5),
        p99: at(0.99),
        max: latencies.at(-1) ?? null,
        recovered: libraryClients.reduce((sum, c) => sum + c.stats.recovered, 0),
        reconnects,
      })}\n`,
    );
  } else if (line === 'exit') {
    process.exit(0);
  }
}
// stdin closed: the bench that started us is gone.
process.exit(0);
