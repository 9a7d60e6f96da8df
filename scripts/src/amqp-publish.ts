#!/usr/bin/env node
// `npm run amqp-publish -- <routing key> '<json>'`: one message into RabbitMQ, as a producer would send it.
import { connectRabbit, parseRabbitUrls } from '@socketbridge/common';

const [routingKey, body] = process.argv.slice(2);
if (!routingKey || body === undefined) {
  console.error(`usage: npm run amqp-publish -- <routing key (the channel)> '<JSON body>'
  env: SOCKETBRIDGE_RABBITMQ_URL (amqp://guest:guest@127.0.0.1:5672), SOCKETBRIDGE_EXCHANGE (socketbridge)`);
  process.exit(2);
}
let isJson = true;
try {
  JSON.parse(body);
} catch {
  isJson = false;
}
const exchange = process.env.SOCKETBRIDGE_EXCHANGE ?? 'socketbridge';
const urls = parseRabbitUrls(process.env.SOCKETBRIDGE_RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672');
const { connection } = await connectRabbit(urls, { timeoutMs: 5000, connectionName: 'socketbridge amqp-publish' });
const channel = await connection.createConfirmChannel();
await channel.assertExchange(exchange, 'topic', { durable: true });
channel.publish(exchange, routingKey, Buffer.from(body), { contentType: isJson ? 'application/json' : 'text/plain', persistent: true });
await channel.waitForConfirms();
console.log(`published to exchange ${exchange} with routing key ${routingKey} (${isJson ? 'JSON' : 'text'}), confirmed by RabbitMQ`);
await connection.close();
