import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AGClientSocket } from 'socketcluster-client';
import type { Redis } from 'ioredis';
import { createLogger, registryKeys, type Bridge, type Envelope } from '@socketbridge/common';
import { AmqpProducer, LocalCluster, connectClient, rabbitNames, waitFor } from '@socketbridge/devkit';
import { LocalBridges } from '../src/local.js';
import { OWNERS_KEY, ReconcileError, Reconciler } from '../src/reconciler.js';
import { API_VERSION, KIND, type SocketBridge, type SocketBridgeSpec } from '../src/resource.js';
import { RABBITMQ_URL, TEST_REDIS_URL, cleanRegistry, deleteKeys, uniqueId, type RabbitAdmin } from './support/services.js';
import { OperatorTestBed } from './support/test-bed.js';

const id = uniqueId();
const names = rabbitNames('op');
const exchange = `op-${id}.market`;
const channelPrefix = `p${id}`;
const queues = { prices: `op-${id}.prices`, kept: `op-${id}.kept`, dropped: `op-${id}.dropped`, extra: `op-${id}.extra`, ordered: `op-${id}.ordered`, quorum: `op-${id}.quorum`, stream: `op-${id}.stream` };
const bridges = { market: `op-${id}-market`, kept: `op-${id}-kept`, dropped: `op-${id}-dropped`, other: `op-${id}-other`, typed: `op-${id}-typed` };

// The reconciler in this process (no API server), with a real cluster reading what it writes.
const bed = new OperatorTestBed({ apiServer: false, bridges: Object.values(bridges), queues: Object.values(queues), exchanges: [exchange, `${exchange}.direct`] });
let cluster: LocalCluster;
let producer: AmqpProducer;
let rabbit: RabbitAdmin;
let redis: Redis;
let reconciler: Reconciler;
let local: LocalBridges;
const sockets: AGClientSocket[] = [];

function resource(name: string, spec: SocketBridgeSpec): SocketBridge {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec };
}

function marketSpec(routingKeys: string[]): SocketBridgeSpec {
  return {
    queues: [{ name: queues.prices, bindings: routingKeys.map((routingKey) => ({ exchange, type: 'topic', routingKey })), route: { channel: `${channelPrefix}.{body.symbol}` } }],
    channels: [{ pattern: `${channelPrefix}.*`, access: 'public', history: { size: 10, ttlSeconds: 60 } }],
  };
}

async function registryEntry(name: string): Promise<Bridge | undefined> {
  const text = await redis.hget(registryKeys.bridges, name);
  return text ? (JSON.parse(text) as Bridge) : undefined;
}

/** Subscribes once the workers know the bridge's public policy (they reload on the registry's change announcement). */
async function subscribe(socket: AGClientSocket, channelName: string): Promise<Envelope[]> {
  const received: Envelope[] = [];
  let attempt = 0;
  await waitFor(
    async () => {
      attempt++;
      const channel = socket.subscribe(channelName);
      const outcome = await Promise.race([
        channel.listener('subscribe').once().then(() => true),
        channel.listener('subscribeFail').once().then(() => false),
      ]);
      if (outcome) {
        void (async () => {
          for await (const data of channel) received.push(data as Envelope);
        })();
        return true;
      }
      socket.unsubscribe(channelName);
      return false;
    },
    15000,
    `a subscription to ${channelName} (attempt ${attempt})`,
    200,
  );
  return received;
}

beforeAll(async () => {
  cluster = await LocalCluster.start({
    brokers: 1,
    workers: 1,
    publishers: 1,
    env: { ...names, SOCKETBRIDGE_REGISTRY_RESYNC_MS: '1000', SOCKETBRIDGE_REDIS_URL: TEST_REDIS_URL },
  });
  producer = await AmqpProducer.connect();
  ({ rabbit, redis } = await bed.start());
  reconciler = new Reconciler(redis, createLogger('operator-test', 'silent'), { timeoutMs: 10000 });
  local = new LocalBridges(redis, reconciler, RABBITMQ_URL);
});

afterAll(async () => {
  for (const socket of sockets) socket.disconnect();
  if (redis) await deleteKeys(redis, `socketbridge:history*:{${channelPrefix}.*`);
  if (producer) {
    await producer.deleteTopology(names);
    await producer.close();
  }
  await cluster?.stop();
  await bed.stop();
});

describe('the reconciler against real RabbitMQ and Redis', () => {
  it('creates queues, exchanges, bindings and the route; a message published to the exchange reaches a subscribed client', async () => {
    const { record, error, changes } = await local.apply(resource(bridges.market, marketSpec(['price.#'])));
    expect(error).toBeUndefined();
    expect(changes).toEqual([`declared topic exchange ${exchange}`, `declared queue ${queues.prices}`]);
    expect(record.generation).toBe(1);
    expect(record.status.observedGeneration).toBe(1);
    expect(record.status.conditions).toEqual([expect.objectContaining({ type: 'Ready', status: 'True', reason: 'Reconciled', observedGeneration: 1 })]);
    expect(record.status.queues).toEqual([{ name: queues.prices, ready: true, messages: 0, consumers: expect.any(Number) }]);
    expect(record.status.queuesReady).toBe('1/1');

    // The registry holds exactly what the publisher reads.
    expect(await registryEntry(bridges.market)).toEqual({
      name: bridges.market,
      queues: [
        { name: queues.prices, durable: true, singleActiveConsumer: false, type: 'classic', bindings: [{ exchange, type: 'topic', routingKey: 'price.#' }], route: { channel: `${channelPrefix}.{body.symbol}` } },
      ],
      channels: [{ pattern: `${channelPrefix}.*`, access: 'public', history: { size: 10, ttlSeconds: 60 } }],
    });
    expect(await redis.hget(OWNERS_KEY, bridges.market)).toBe('local');
    expect(await rabbit.queue(queues.prices)).toBeDefined();
    expect(await rabbit.exchangeExists(exchange)).toBe(true);

    // The publisher consumes the new queue; an anonymous socket may subscribe (public policy).
    await waitFor(async () => ((await rabbit.queue(queues.prices))?.consumerCount ?? 0) >= 1, 15000, 'the publisher to consume the bridge queue');
    const socket = await connectClient(cluster.workers[0]!.port);
    sockets.push(socket);
    const received = await subscribe(socket, `${channelPrefix}.BTC`);
    await producer.publish(exchange, 'price.crypto', { symbol: 'BTC', price: 64000 }, { messageId: `btc-${id}` });
    await waitFor(() => received.length >= 1, 15000, 'the message on the client');
    expect(received[0]).toMatchObject({ id: `btc-${id}`, data: { symbol: 'BTC', price: 64000 } });

    // Applying the same spec again changes nothing.
    const again = await local.apply(resource(bridges.market, marketSpec(['price.#'])));
    expect(again.changes).toEqual([]);
    expect(again.record.generation).toBe(1);
  });

  it('applies a spec change as a diff (a binding removed, one added) and observedGeneration follows', async () => {
    expect(await rabbit.routes(exchange, 'quote.x')).toBe(false);
    const { record, error, changes } = await local.apply(resource(bridges.market, marketSpec(['quote.#'])));
    expect(error).toBeUndefined();
    expect(changes).toEqual([`unbound queue ${queues.prices} from ${exchange} ("price.#")`]);
    expect(record.generation).toBe(2);
    expect(record.status.observedGeneration).toBe(2);
    expect(await rabbit.routes(exchange, 'price.x')).toBe(false);
    expect(await rabbit.routes(exchange, 'quote.x', { symbol: 'PROBE' })).toBe(true);
    expect((await registryEntry(bridges.market))?.queues[0]?.bindings).toEqual([{ exchange, type: 'topic', routingKey: 'quote.#' }]);

    const socket = sockets[0]!;
    const received = await subscribe(socket, `${channelPrefix}.ETH`);
    await producer.publish(exchange, 'quote.crypto', { symbol: 'ETH', price: 3000 });
    await waitFor(() => received.length >= 1, 15000, 'the message through the new binding');
    expect(received[0]).toMatchObject({ data: { symbol: 'ETH', price: 3000 } });
  });

  it('refuses an invalid spec with a clear message and touches nothing; observedGeneration stays', async () => {
    const entryBefore = await registryEntry(bridges.market);
    const broken: SocketBridgeSpec = {
      queues: [
        { name: queues.prices, bindings: [{ exchange, type: 'topic', routingKey: 'other.#' }], route: { channel: `${channelPrefix}.{body.symbol}` } },
        { name: queues.prices, bindings: [], route: { channel: `${channelPrefix}.{payload.symbol}` } },
      ],
    };
    const { record, error } = await local.apply(resource(bridges.market, broken));
    expect(error).toBeInstanceOf(ReconcileError);
    expect(error?.reason).toBe('InvalidSpec');
    expect(error?.message).toContain(`queue ${queues.prices} is declared twice`);
    expect(error?.message).toContain('names {payload.symbol}; use {routingKey}, {headers.<name>} or {body.<field>}');
    expect(record.generation).toBe(3);
    expect(record.status.observedGeneration).toBe(2);
    expect(record.status.conditions?.[0]).toMatchObject({ status: 'False', reason: 'InvalidSpec', observedGeneration: 3 });
    expect(await registryEntry(bridges.market)).toEqual(entryBefore);
    expect(await rabbit.routes(exchange, 'other.x')).toBe(false);
  });

  it('refuses a queue that exists with other arguments, and a queue another bridge routes, before touching anything', async () => {
    // An ordered queue declared elsewhere with single-active-consumer; the spec says otherwise.
    const admin = await AmqpProducer.connect();
    await admin.channel.assertQueue(queues.ordered, { durable: true, arguments: { 'x-single-active-consumer': true } });
    await admin.close();
    const clash = await reconciler
      .apply({ name: bridges.other, owner: 'local', rabbitUrl: RABBITMQ_URL, spec: { queues: [{ name: queues.ordered, bindings: [{ exchange: `${exchange}.direct`, type: 'direct', routingKey: 'k' }], route: { channel: 'x.{routingKey}' } }] } })
      .catch((e: unknown) => e as ReconcileError);
    expect(clash).toBeInstanceOf(ReconcileError);
    expect((clash as ReconcileError).reason).toBe('QueueClash');
    expect((clash as ReconcileError).message).toContain(`queue ${queues.ordered} already exists with other arguments`);
    expect((clash as ReconcileError).message).toContain("inequivalent arg 'x-single-active-consumer'");
    expect(await rabbit.exchangeExists(`${exchange}.direct`)).toBe(false);
    expect(await registryEntry(bridges.other)).toBeUndefined();

    const conflict = await reconciler
      .apply({ name: bridges.other, owner: 'local', rabbitUrl: RABBITMQ_URL, spec: { queues: [{ name: queues.prices, route: { channel: 'x.{routingKey}' } }] } })
      .catch((e: unknown) => e as ReconcileError);
    expect(conflict).toMatchObject({ reason: 'QueueConflict', message: `queue ${queues.prices} is already routed by bridge ${bridges.market}; a queue belongs to one bridge` });
    expect(await registryEntry(bridges.other)).toBeUndefined();
    // Deleting the refused resource (deletionPolicy delete) must not take the other bridge's queue with it.
    const removed = await reconciler.remove({ name: bridges.other, owner: 'local', rabbitUrl: RABBITMQ_URL, deletionPolicy: 'delete', spec: { queues: [{ name: queues.prices, route: { channel: 'x.{routingKey}' } }] } });
    expect(removed).toEqual({ deletedQueues: [] });
    expect(await rabbit.queue(queues.prices)).toBeDefined();

    // A registry name belongs to the resource that wrote it.
    const taken = await reconciler.apply({ name: bridges.market, owner: 'team-a/market', rabbitUrl: RABBITMQ_URL, spec: marketSpec(['quote.#']) }).catch((e: unknown) => e as ReconcileError);
    expect(taken).toMatchObject({ reason: 'NameConflict', message: `bridge name ${bridges.market} is already used by local` });
  });

  it('deletionPolicy retain: the registry entry goes, the queue stays', async () => {
    const applied = await local.apply(resource(bridges.kept, { queues: [{ name: queues.kept, route: { channel: 'kept.{routingKey}' } }], deletionPolicy: 'retain' }));
    expect(applied.error).toBeUndefined();
    expect(await registryEntry(bridges.kept)).toBeDefined();
    expect(await local.delete(bridges.kept)).toEqual({ found: true, deletedQueues: [] });
    expect(await registryEntry(bridges.kept)).toBeUndefined();
    expect(await redis.hget(OWNERS_KEY, bridges.kept)).toBeNull();
    expect(await local.read(bridges.kept)).toBeUndefined();
    expect(await rabbit.queue(queues.kept)).toBeDefined();
  });

  it('deletionPolicy delete: the registry entry and the queues go (also a queue dropped from the spec earlier)', async () => {
    const spec = (names: string[]): SocketBridgeSpec => ({ queues: names.map((name) => ({ name, route: { channel: 'dropped.{routingKey}' } })), deletionPolicy: 'delete' });
    expect((await local.apply(resource(bridges.dropped, spec([queues.dropped, queues.extra])))).error).toBeUndefined();
    expect(await rabbit.queue(queues.extra)).toBeDefined();
    // The spec no longer names `extra`: with deletionPolicy delete it is deleted now.
    const shrunk = await local.apply(resource(bridges.dropped, spec([queues.dropped])));
    expect(shrunk.changes).toEqual([`deleted queue ${queues.extra} (no longer in the spec)`]);
    expect(await rabbit.queue(queues.extra)).toBeUndefined();
    expect(await local.delete(bridges.dropped)).toEqual({ found: true, deletedQueues: [queues.dropped] });
    expect(await registryEntry(bridges.dropped)).toBeUndefined();
    expect(await rabbit.queue(queues.dropped)).toBeUndefined();
  });

  it('a queue deleted by hand comes back on the next apply (drift)', async () => {
    await rabbit.deleteQueue(queues.prices);
    expect(await rabbit.queue(queues.prices)).toBeUndefined();
    const { error, changes } = await local.apply(resource(bridges.market, marketSpec(['quote.#'])));
    expect(error).toBeUndefined();
    expect(changes).toEqual([`declared queue ${queues.prices}`]);
    expect(await rabbit.routes(exchange, 'quote.x', { symbol: 'PROBE' })).toBe(true);
  });

  it('declares quorum and stream queues with their arguments; the same name with another type is a clash', async () => {
    const spec: SocketBridgeSpec = {
      queues: [
        { name: queues.quorum, type: 'quorum', singleActiveConsumer: true, quorum: { deliveryLimit: 5 }, bindings: [{ exchange, type: 'topic', routingKey: 'q.#' }], route: { channel: 'x.{routingKey}' } },
        { name: queues.stream, type: 'stream', stream: { maxAge: '1h', maxLengthBytes: 10_000_000 }, bindings: [{ exchange, type: 'topic', routingKey: 's.#' }], route: { channel: 'x.{routingKey}' } },
      ],
    };
    const { error, changes } = await local.apply(resource(bridges.typed, spec));
    expect(error).toBeUndefined();
    expect(changes).toEqual([`declared queue ${queues.quorum}`, `declared queue ${queues.stream}`]);
    expect((await registryEntry(bridges.typed))?.queues.map((q) => [q.type, q.quorum ?? q.stream])).toEqual([
      ['quorum', { deliveryLimit: 5 }],
      ['stream', { maxAge: '1h', maxLengthBytes: 10_000_000 }],
    ]);
    // RabbitMQ holds them with those arguments: declaring the same again passes, a classic one of that name clashes.
    const admin = await AmqpProducer.connect();
    admin.connection.on('error', () => undefined);
    await admin.channel.assertQueue(queues.quorum, { durable: true, arguments: { 'x-queue-type': 'quorum', 'x-single-active-consumer': true, 'x-delivery-limit': 5 } });
    await admin.close();
    const again = await local.apply(resource(bridges.typed, spec));
    expect(again.error).toBeUndefined();
    expect(again.changes).toEqual([]);
    // Once no bridge routes it, the queue is free to take, but not as another type: RabbitMQ keeps its type.
    await cleanRegistry(redis, [bridges.typed]);
    const clash = await reconciler
      .apply({ name: bridges.other, owner: 'local', rabbitUrl: RABBITMQ_URL, spec: { queues: [{ name: queues.quorum, route: { channel: 'x.{routingKey}' } }] } })
      .catch((e: unknown) => e as ReconcileError);
    expect(clash).toMatchObject({ reason: 'QueueClash' });
    expect((clash as ReconcileError).message).toContain(`queue ${queues.quorum} already exists with other arguments`);
  });
});
