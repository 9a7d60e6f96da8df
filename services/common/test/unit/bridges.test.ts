import { describe, expect, it } from 'vitest';
import { bridgeProblems, queueArguments, type Bridge, type BridgeQueue } from '../../src/bridges.js';

const queue = (over: Partial<BridgeQueue> = {}): BridgeQueue => ({
  name: 'prices',
  durable: true,
  singleActiveConsumer: false,
  bindings: [{ exchange: 'market', type: 'topic', routingKey: 'prices.#' }],
  route: { channel: 'prices.{routingKey}' },
  ...over,
});
const bridge = (over: Partial<Bridge> = {}): Bridge => ({ name: 'b', queues: [queue()], channels: [{ pattern: 'prices.*', access: 'public' }], ...over });

describe('bridgeProblems', () => {
  it('finds nothing wrong with a sound bridge', () => {
    expect(bridgeProblems(bridge())).toEqual([]);
    expect(bridgeProblems(bridge({ channels: [{ pattern: 'client.{clientId}.#', access: 'owner' }] }))).toEqual([]);
  });

  it('refuses what the operator refuses: amq. queues, duplicate patterns, one exchange with two types', () => {
    expect(bridgeProblems(bridge({ queues: [queue({ name: 'amq.mine' })] }))).toEqual([expect.stringContaining('reserved by RabbitMQ')]);
    expect(bridgeProblems(bridge({ channels: [{ pattern: 'a', access: 'public' }, { pattern: 'a', access: 'owner' }] }))).toContainEqual(
      'channel pattern a is declared twice',
    );
    const twoTypes = bridge({
      queues: [queue(), queue({ name: 'other', bindings: [{ exchange: 'market', type: 'direct', routingKey: 'x' }] })],
    });
    expect(bridgeProblems(twoTypes)).toEqual(['exchange market is bound as topic and as direct; an exchange has one type']);
  });

  it('refuses no queues, duplicate queues and empty routes', () => {
    expect(bridgeProblems(bridge({ queues: [] }))).toEqual(['spec.queues must declare at least one queue']);
    expect(bridgeProblems(bridge({ queues: [queue(), queue()] }))).toEqual(['queue prices is declared twice']);
    expect(bridgeProblems(bridge({ queues: [queue({ route: { channel: '' } })] }))).toContainEqual('queue prices: route.channel is empty');
  });

  it('refuses route templates naming unknown fields or making no valid channel name', () => {
    const unknown = bridgeProblems(bridge({ queues: [queue({ route: { channel: 'x.{foo}.{headers}.{routingKey.x}' } })] }));
    expect(unknown).toHaveLength(3);
    expect(bridgeProblems(bridge({ queues: [queue({ route: { channel: 'has space.{routingKey}' } })] }))).toEqual([
      'queue prices: route has space.{routingKey} cannot make a valid channel name',
    ]);
  });

  it('refuses malformed patterns and owner access without {clientId}', () => {
    expect(bridgeProblems(bridge({ channels: [{ pattern: 'a.#.b', access: 'public' }] }))).toHaveLength(1);
    expect(bridgeProblems(bridge({ channels: [{ pattern: 'a.{1x}', access: 'public' }] }))).toHaveLength(1);
    expect(bridgeProblems(bridge({ channels: [{ pattern: 'a.{id}', access: 'owner' }] }))).toEqual([
      'channel pattern a.{id}: owner access needs a {clientId} segment',
    ]);
  });

  it('names each problem once', () => {
    const problems = bridgeProblems(bridge({ queues: [queue(), queue(), queue()] }));
    expect(problems).toEqual(['queue prices is declared twice']);
  });

  it('refuses queue type combinations RabbitMQ refuses or would ignore', () => {
    expect(bridgeProblems(bridge({ queues: [queue({ type: 'quorum', quorum: { deliveryLimit: 5 }, singleActiveConsumer: true })] }))).toEqual([]);
    expect(bridgeProblems(bridge({ queues: [queue({ type: 'stream', stream: { maxAge: '7D' } })] }))).toEqual([]);
    expect(bridgeProblems(bridge({ queues: [queue({ type: 'stream', durable: false })] }))).toEqual(['queue prices: stream queues are always durable']);
    expect(bridgeProblems(bridge({ queues: [queue({ type: 'quorum', durable: false })] }))).toEqual(['queue prices: quorum queues are always durable']);
    expect(bridgeProblems(bridge({ queues: [queue({ quorum: { deliveryLimit: 1 } })] }))).toEqual(['queue prices: quorum settings need type quorum']);
    expect(bridgeProblems(bridge({ queues: [queue({ type: 'quorum', stream: { maxAge: '1h' } })] }))).toEqual(['queue prices: stream settings need type stream']);
    expect(bridgeProblems(bridge({ queues: [queue({ type: 'stream', singleActiveConsumer: true })] }))).toEqual([
      'queue prices: a stream queue has no single active consumer over AMQP 0-9-1',
    ]);
  });
});

describe('queueArguments', () => {
  it("gives each type RabbitMQ's x-arguments, and a classic queue none but its single active consumer", () => {
    expect(queueArguments(queue())).toEqual({});
    expect(queueArguments(queue({ singleActiveConsumer: true }))).toEqual({ 'x-single-active-consumer': true });
    expect(queueArguments(queue({ type: 'quorum', singleActiveConsumer: true, quorum: { deliveryLimit: 5, initialGroupSize: 3 } }))).toEqual({
      'x-single-active-consumer': true,
      'x-queue-type': 'quorum',
      'x-delivery-limit': 5,
      'x-quorum-initial-group-size': 3,
    });
    expect(queueArguments(queue({ type: 'stream', stream: { maxLengthBytes: 1e9, maxAge: '7D', segmentSizeBytes: 1e8 } }))).toEqual({
      'x-queue-type': 'stream',
      'x-max-length-bytes': 1e9,
      'x-max-age': '7D',
      'x-stream-max-segment-size-bytes': 1e8,
    });
  });
});
