#!/usr/bin/env node
// Feeds RabbitMQ: `perChannel` messages on each channel, round robin, at `rate` per second (0: as
// fast as confirms allow). Each body carries its channel, sequence number and send time.
// BENCH_CONFIRM_WINDOW (paced runs): how many messages may wait for their confirm (0: none).
import amqp from 'amqplib';
import { preciseNow } from './proc.js';

const exchange = process.env.BENCH_EXCHANGE!;
const channels = process.env.BENCH_CHANNELS!.split(',');
const perChannel = Number(process.env.BENCH_PER_CHANNEL);
const rate = Number(process.env.BENCH_RATE ?? 0);
// Message ids are unique per run: SocketBridge treats a repeated id as a redelivery (same offset).
// `none`: no messageId, the path of producers that set none (the load generators go by `seq`).
const run = process.env.BENCH_RUN ?? String(Date.now());
const withIds = (process.env.BENCH_MESSAGE_IDS ?? 'unique') === 'unique';
const connection = await amqp.connect(process.env.SOCKETBRIDGE_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
const channel = await connection.createConfirmChannel();
await channel.assertExchange(exchange, 'topic', { durable: true });
// Paced runs with a confirm window: up to this many messages unconfirmed, so the pace does not
// wait on each confirm's round trip (a quorum queue's confirm waits for a majority's disk write,
// which would otherwise cap the rate at a few hundred messages/s). 0: wait for every batch's confirms.
const confirmWindow = Number(process.env.BENCH_CONFIRM_WINDOW ?? 0);
const started = Date.now();
let sent = 0;
let unconfirmed = 0;
const confirmed = () => void unconfirmed--;
// Paced runs send each message on its own schedule (a burst would queue at the clients and be
// measured as latency); as fast as possible, 200 at a time between confirms.
const batch = rate > 0 ? Math.max(1, Math.round(rate / 1000)) : 200;
for (let seq = 0; seq < perChannel; seq++) {
  for (const ch of channels) {
    // Sub-millisecond send time: the load generators' latencies are a few ms.
    const body = JSON.stringify({ ch, seq, t: preciseNow() });
    unconfirmed++;
    channel.publish(exchange, ch, Buffer.from(body), { contentType: 'application/json', ...(withIds ? { messageId: `${run}:${ch}:${seq}` } : {}) }, confirmed);
    sent++;
    if (sent % batch === 0) {
      if (rate > 0 && confirmWindow > 0) {
        if (unconfirmed >= confirmWindow) await channel.waitForConfirms();
      } else {
        await channel.waitForConfirms();
      }
      if (rate > 0) {
        const due = started + (sent / rate) * 1000;
        if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()));
      }
    }
  }
}
await channel.waitForConfirms();
process.stdout.write(`${JSON.stringify({ msg: 'sent', sent, seconds: (Date.now() - started) / 1000 })}\n`);
await connection.close();
