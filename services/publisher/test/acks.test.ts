import { randomUUID } from 'node:crypto';
import amqp, { type ChannelModel, type ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rabbitmqUrl, waitFor } from '@socketbridge/devkit';
import { AckBatcher } from '../src/acks.js';

let connection: ChannelModel;
beforeAll(async () => {
  connection = await amqp.connect(rabbitmqUrl());
});
afterAll(async () => {
  await connection.close();
});

/** A fresh queue holding `count` messages, and a confirm channel consuming it with manual acks. */
async function consuming(count: number) {
  const queue = `acks-test-${randomUUID()}`;
  const setup = await connection.createConfirmChannel();
  await setup.assertQueue(queue, { durable: false, autoDelete: false });
  for (let i = 0; i < count; i++) setup.sendToQueue(queue, Buffer.from(String(i)));
  await setup.waitForConfirms();
  const channel = await connection.createConfirmChannel();
  let closed = false;
  channel.on('error', () => undefined);
  channel.on('close', () => (closed = true));
  await channel.prefetch(count);
  const received: ConsumeMessage[] = [];
  await channel.consume(queue, (message) => void (message && received.push(message)));
  await waitFor(() => received.length === count, 10000, 'every delivery');
  const counts = async () => {
    const probe = await connection.createChannel();
    try {
      return await probe.checkQueue(queue);
    } finally {
      await probe.close();
    }
  };
  return { queue, setup, channel, received, counts, isClosed: () => closed };
}

describe('AckBatcher on a real RabbitMQ channel', () => {
  it('acks out of order in one turn, skips a delivery still in flight and a nacked one, and RabbitMQ agrees', async () => {
    const { queue, setup, channel, received, counts, isClosed } = await consuming(6);
    const acks = new AckBatcher(channel);
    const sent: Array<[number, boolean]> = [];
    const ack = channel.ack.bind(channel);
    channel.ack = (message, allUpTo) => {
      sent.push([message.fields.deliveryTag, allUpTo ?? false]);
      ack(message, allUpTo);
    };
    // Tags 1..6: 3 is still in flight, 5 is nacked (requeued), the rest are acked in one turn.
    acks.ack(received[1]!);
    acks.ack(received[0]!);
    acks.nack(received[4]!, true);
    acks.ack(received[5]!);
    acks.ack(received[3]!);
    await new Promise((resolve) => setImmediate(resolve));
    // One multiple ack for 1-2, then one plain ack each for 6 and 4 (past the delivery in flight).
    expect(sent).toEqual([
      [2, true],
      [6, false],
      [4, false],
    ]);
    // Then 3 completes: every tag up to 6 is settled, one multiple ack covers it (4-6 already are).
    acks.ack(received[2]!);
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent.at(-1)).toEqual([3, true]);
    // The nacked message came back once (as a new delivery, tag 7); acking it leaves the queue empty.
    await waitFor(() => received.length === 7, 10000, 'the nacked message again');
    expect(received[6]!.content.toString()).toBe('4');
    acks.ack(received[6]!);
    await waitFor(async () => (await counts()).messageCount === 0, 10000, 'the queue to be empty');
    // No unknown or repeated delivery tag: RabbitMQ would have closed the channel (PRECONDITION_FAILED).
    expect(isClosed()).toBe(false);
    await channel.close();
    await setup.deleteQueue(queue);
    await setup.close();
  });

  it('an ack never asked for is never sent: that message comes back when the channel closes', async () => {
    const { queue, setup, channel, received, counts } = await consuming(3);
    const acks = new AckBatcher(channel);
    acks.ack(received[0]!);
    acks.ack(received[2]!);
    await new Promise((resolve) => setImmediate(resolve));
    await channel.close();
    await waitFor(async () => (await counts()).messageCount === 1, 10000, 'the unacked message back in the queue');
    const again = await setup.get(queue, { noAck: true });
    expect(again && again.content.toString()).toBe('1');
    await setup.deleteQueue(queue);
    await setup.close();
  });
});
