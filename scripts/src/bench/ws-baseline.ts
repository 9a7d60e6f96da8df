#!/usr/bin/env node
// The baseline: a bare `ws` server that consumes the queue and broadcasts each message to the
// sockets subscribed to its channel, encoding once. No cluster, no history, no auth: the
// near-physical limit of RabbitMQ → WebSocket fan-out in Node on this machine.
import amqp from 'amqplib';
import { WebSocketServer, type WebSocket } from 'ws';

const queue = process.env.BENCH_QUEUE!;
const exchange = process.env.BENCH_EXCHANGE!;
const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
const channels = new Map<string, Set<WebSocket>>();

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
await channel.consume(queue, (message) => {
  if (!message) return;
  JSON.parse(message.content.toString()); // the same validation work the publisher does
  // The body's bytes go to every socket as they are: encoded once, not once per socket.
  for (const socket of channels.get(message.fields.routingKey) ?? []) socket.send(message.content, { binary: false });
  channel.ack(message);
});
server.on('listening', () => undefined);
const address = server.address();
process.stdout.write(`${JSON.stringify({ msg: 'listening', port: typeof address === 'object' && address ? address.port : 0 })}\n`);
process.on('SIGTERM', () => {
  void connection.close().finally(() => process.exit(0));
});
