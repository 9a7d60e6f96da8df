import { describe, expect, it } from 'vitest';
import { bridgeProblems, type Bridge, type BridgeQueue } from '../../src/bridges.js';

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
});
