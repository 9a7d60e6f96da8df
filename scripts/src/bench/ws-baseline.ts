#!/usr/bin/env node
// The baseline: a bare `ws` server that consumes the queue and broadcasts each message to the
// sockets subscribed to its channel, encoding once. No cluster, no history, no auth: the
// near-physical limit of RabbitMQ → WebSocket fan-out in Node on this machine.
// With BENCH_BASELINE_HISTORY=1 (`--baseline history`) it also keeps SocketBridge's two per-message
// guarantees that need no cluster: each message appended to a Redis stream of its channel before it
// is sent and acked (what a reconnecting client would recover from), and a heartbeat to every socket
// every 8 s (SocketBridge's ping interval). The gap to that baseline is what the cluster costs.
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';

const queue = process.env.BENCH_QUEUE!;
const exchange = process.env.BENCH_EXCHANGE!;
const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
const channels = new Map<string, Set<WebSocket>>();
const history = process.env.BENCH_BASELINE_HISTORY === '1' ? new Redis(process.env.SOCKETBRIDGE_REDIS_URL ?? 'redis://127.0.0.1:6379') : undefined;
const HISTORY_PREFIX = `bench-baseline:${process.pid}:`;
if (history) {
  const heartbeat = setInterval(() => {
    for (const socket of server.clients) socket.ping();
  }, 8000);
  heartbeat.unref();
}

server.on('connection', (socket) => {
  socket.on('message', (raw) => {
    const { subscribe } = JSON.parse(raw.toString()) as { subscribe: string };
    if (!channels.has(subscribe)) channels.set(subscribe, new Set());
    channels.get(subscribe)!.add(socket);
    socket.send('{"subscribed":true}');
  });
  socket.on('close', () => {
    for (const set of channels.values()) set.delete(socket);
  });
});

const connection = await amqp.connect(process.env.SOCKETBRIDGE_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
const channel = await connection.createChannel();
await channel.assertExchange(exchange, 'topic', { durable: true });
await channel.assertQueue(queue, { durable: false, autoDelete: true });
await channel.bindQueue(queue, exchange, '#');
await channel.prefetch(200);
const deliver = (message: amqp.ConsumeMessage) => {
  // The body's bytes go to every socket as they are: encoded once, not once per socket.
  for (const socket of channels.get(message.fields.routingKey) ?? []) socket.send(message.content, { binary: false });
  channel.ack(message);
};
await channel.consume(queue, (message) => {
  if (!message) return;
  JSON.parse(message.content.toString()); // the same validation work the publisher does
  if (!history) return deliver(message);
  // One connection's replies come in order, so a channel's messages are still sent in order.
  void history.xadd(`${HISTORY_PREFIX}${message.fields.routingKey}`, 'MAXLEN', '~', '100', '*', 'd', message.content).then(() => deliver(message));
});
server.on('listening', () => undefined);
const address = server.address();
process.stdout.write(`${JSON.stringify({ msg: 'listening', port: typeof address === 'object' && address ? address.port : 0 })}\n`);
process.on('SIGTERM', () => {
  void (async () => {
    await connection.close().catch(() => undefined);
    if (history) {
      // Leave nothing in the machine's Redis.
      for (let cursor = '0', first = true; first || cursor !== '0'; first = false) {
        const [next, keys] = await history.scan(cursor, 'MATCH', `${HISTORY_PREFIX}*`, 'COUNT', 1000);
        if (keys.length) await history.del(...keys);
        cursor = next;
      }
      history.disconnect();
    }
    process.exit(0);
  })();
});
