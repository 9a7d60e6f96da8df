import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { SignJWT } from 'jose';
import type { AGClientSocket } from 'socketcluster-client';
import { redactUrl, type LifecycleEvent } from '@socketbridge/common';
import { LocalCluster, connectClient, devSecrets, freePort, handshakeRefusal, killAll, opsFetch, rabbitmqUrl, waitFor } from '@socketbridge/devkit';
import { TcpProxy } from './support/tcp-proxy.js';

// Lifecycle events into RabbitMQ (#17): a real worker publishes through a TCP proxy the test
// controls (the machine's RabbitMQ is shared: it is never stopped), a real consumer reads the exchange.
// The worker is given a node list whose first node is down (a closed port): it goes on to the next.

const QUEUE_LIMIT = 20;
const exchange = `events-test-${randomUUID().slice(0, 8)}`;
let proxy: TcpProxy;
let viaProxy: URL;
let cluster: LocalCluster;
let consumer: ChannelModel;
let channel: Channel;
const received: Array<{ routingKey: string; persistent: boolean; contentType?: string; event: LifecycleEvent }> = [];

const key = new TextEncoder().encode(devSecrets.SOCKETBRIDGE_AUTH_KEY);
const tokenFor = (clientId: string) =>
  new SignJWT({ channels: [] }).setProtectedHeader({ alg: 'HS256' }).setSubject(clientId).setIssuedAt().setExpirationTime('1h').sign(key);

beforeAll(async () => {
  const rabbit = new URL(rabbitmqUrl());
  proxy = await TcpProxy.start({ host: rabbit.hostname, port: Number(rabbit.port || 5672) });
  viaProxy = new URL(rabbit);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const downNode = new URL(viaProxy);
  downNode.port = String(await freePort()); // nothing listens there: refused
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    env: {
      SOCKETBRIDGE_EVENTS_RABBITMQ_URL: `${downNode.toString()},${viaProxy.toString()}`,
      SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS: '1000',
      SOCKETBRIDGE_EVENTS_EXCHANGE: exchange,
      SOCKETBRIDGE_EVENTS_QUEUE_LIMIT: String(QUEUE_LIMIT),
      SOCKETBRIDGE_EVENTS_CONFIRM_TIMEOUT_MS: '1000',
      SOCKETBRIDGE_EVENTS_RECONNECT_MAX_MS: '300',
    },
  });
  consumer = await amqp.connect(rabbitmqUrl());
  channel = await consumer.createChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, exchange, '#');
  await channel.consume(queue, (message) => {
    if (!message) return;
    received.push({
      routingKey: message.fields.routingKey,
      persistent: message.properties.deliveryMode === 2,
      contentType: message.properties.contentType as string | undefined,
      event: JSON.parse(message.content.toString()) as LifecycleEvent,
    });
  }, { noAck: true });
}, 60000);

afterAll(async () => {
  await channel?.deleteExchange(exchange).catch(() => undefined);
  await consumer?.close().catch(() => undefined);
  await cluster?.stop();
  await proxy?.close();
  await killAll();
});

const eventsOf = (clientId: string) => received.filter((r) => r.event.clientId === clientId);

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await opsFetch(`http://127.0.0.1:${cluster.workers[0]!.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return Number(line?.split(' ').at(-1) ?? NaN);
}

/** A client that connects, subscribes to its own channel, and disconnects; resolves once the worker answered each. */
async function visit(clientId: string): Promise<void> {
  const socket: AGClientSocket = await connectClient(cluster.workers[0]!.port, { token: await tokenFor(clientId), autoReconnect: false });
  const own = socket.subscribe(`client.${clientId}`);
  await own.listener('subscribe').once(5000);
  socket.disconnect();
}

describe('lifecycle events into RabbitMQ', () => {
  it('a consumer of the exchange sees connect, subscribe, unsubscribe and disconnect for a client, in order, persistent, and refused handshakes', async () => {
    const ada = `ada-${randomUUID().slice(0, 8)}`;
    await visit(ada);
    await waitFor(() => eventsOf(ada).some((r) => r.event.event === 'disconnect'), 10000, "Ada's disconnect event");
    const seen = eventsOf(ada);
    expect(seen.map((r) => r.routingKey)).toEqual([`connect.${ada}`, `subscribe.client.${ada}`, `unsubscribe.client.${ada}`, `disconnect.${ada}`]);
    expect(new Set(seen.map((r) => r.event.socketId)).size).toBe(1);
    expect(seen.every((r) => r.persistent && r.contentType === 'application/json')).toBe(true);
    expect(seen[1]!.event).toMatchObject({ event: 'subscribe', channel: `client.${ada}`, clientId: ada });
    expect(seen[3]!.event).toMatchObject({ event: 'disconnect', code: 1000 });
    expect(seen.map((r) => r.event.ts)).toEqual([...seen.map((r) => r.event.ts)].sort((a, b) => a - b));

    // A refused handshake: an auth failure with its reason; its client is unknown.
    const forged = await new SignJWT({ channels: [] }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setExpirationTime('1h').sign(new TextEncoder().encode('not-the-key-not-the-key-not-the-key'));
    expect((await handshakeRefusal(cluster.workers[0]!.port, { token: forged })).name).toBe('AuthTokenInvalidError');
    await waitFor(() => received.some((r) => r.routingKey === 'auth_failure.-'), 10000, 'the auth failure event');
    expect(received.find((r) => r.routingKey === 'auth_failure.-')!.event).toMatchObject({ event: 'auth_failure', clientId: null, refusal: 'bad_token', error: 'AuthTokenInvalidError' });
    // Through the list's second node, the first being down.
    const connectedTo = cluster.workers[0]!.lines.filter((l) => l.msg === 'lifecycle events: connected to RabbitMQ').map((l) => l.node);
    expect(connectedTo).toEqual([redactUrl(viaProxy.toString())]);
  });

  for (const outage of ['blackhole', 'cut'] as const) {
    it(`RabbitMQ unreachable (${outage}): the worker keeps serving sockets, counts what it drops, and events flow again when the path is back`, async () => {
      const droppedBefore = await metric('socketbridge_events_dropped_total', 'reason="overflow"');
      const worker = cluster.workers[0]!;
      const earlier = new Set(worker.lines);
      proxy.setMode(outage);
      // Each visit makes 4 events: 15 visits are three times what the queue holds.
      const visitors = Array.from({ length: 15 }, (_, i) => `${outage}-${i}-${randomUUID().slice(0, 6)}`);
      for (const visitor of visitors) await visit(visitor); // each handshake and subscribe answered as usual
      // The last visitors' unsubscribe and disconnect events are made after their sockets close, so
      // wait for the drops to reach what 15 visits must cost rather than reading the count at once.
      const mustDrop = 15 * 4 - QUEUE_LIMIT;
      await waitFor(async () => (await metric('socketbridge_events_dropped_total', 'reason="overflow"')) - droppedBefore >= mustDrop, 5000, `${mustDrop} drops to be counted`);
      expect(await metric('socketbridge_events_queued')).toBeLessThanOrEqual(QUEUE_LIMIT);
      const dropped = (await metric('socketbridge_events_dropped_total', 'reason="overflow"')) - droppedBefore;
      // The worker found out by itself: a blackhole never answers (no confirms: it drops the connection,
      // and its reconnects time out in the handshake); a cut path refuses the reconnects.
      for (const noticed of outage === 'blackhole' ? ['did not confirm lifecycle events in time', 'could not connect'] : ['could not connect']) {
        await worker.waitForLog((l) => !earlier.has(l) && String(l.msg).includes(noticed), 10000, `the worker to log "${noticed}"`);
      }
      expect(dropped).toBeGreaterThanOrEqual(mustDrop);

      const restoredAt = Date.now();
      proxy.setMode('open');
      // What was queued during the outage (the first visitors' events) goes out once the worker reconnects…
      await waitFor(() => eventsOf(visitors[0]!).some((r) => r.event.event === 'disconnect'), 15000, 'the events queued during the outage').catch(async (error: unknown) => {
        throw new Error(`${(error as Error).message}; published ${await metric('socketbridge_events_published_total')}, queued ${await metric('socketbridge_events_queued')}; the worker said:\n${cluster.workers[0]!.raw.filter((l) => l.includes('events')).slice(-15).join('\n')}`);
      });
      const flowing = Date.now() - restoredAt;
      expect(eventsOf(visitors[0]!).map((r) => r.event.event)).toEqual(['connect', 'subscribe', 'unsubscribe', 'disconnect']);
      // …and new events follow them.
      const after = `after-${outage}-${randomUUID().slice(0, 6)}`;
      await visit(after);
      await waitFor(() => eventsOf(after).some((r) => r.event.event === 'disconnect'), 10000, 'events after the path is back');
      console.info(`${outage}: ${dropped} of ${15 * 4} events dropped during the outage; the queued ones flowing again ${flowing} ms after the path came back`);
    }, 60000);
  }
});
