import { describe, expect, it } from 'vitest';
import { bridgeProblems, redactUrl } from '@socketbridge/common';
import { waitFor } from '@socketbridge/devkit';
import { toBridge } from '../src/bridge.js';
import { nextStatus } from '../src/status.js';
import { WorkQueue } from '../src/workqueue.js';
import { mergePatch } from './support/fake-apiserver.js';

describe('the work queue', () => {
  it('queues a key once, however often it is added', async () => {
    const queue = new WorkQueue(10, 100);
    queue.add('ns/a');
    queue.add('ns/a');
    queue.add('ns/b');
    expect(queue.depth).toBe(2);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
    expect(queue.depth).toBe(0);
  });

  it('never hands a key being processed to a second worker; an add meanwhile runs it again afterwards', async () => {
    const queue = new WorkQueue(10, 100);
    queue.add('ns/a');
    const key = await queue.get();
    queue.add('ns/a'); // while a worker holds it
    let second: string | undefined;
    const waiting = queue.get().then((k) => (second = k));
    await new Promise((resolve) => setImmediate(resolve));
    expect(second).toBeUndefined();
    queue.done(key!);
    await waiting;
    expect(second).toBe('ns/a');
    queue.done('ns/a');
    queue.shutDown();
  });

  it('backs off exponentially per key, capped, and forgets on success', async () => {
    const queue = new WorkQueue(20, 100);
    expect([1, 2, 3, 4, 5].map(() => queue.addRateLimited('ns/a'))).toEqual([20, 40, 80, 100, 100]);
    expect(queue.hasDelayed('ns/a')).toBe(true);
    const started = Date.now();
    expect(await queue.get()).toBe('ns/a');
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    queue.done('ns/a');
    queue.forget('ns/a');
    expect(queue.addRateLimited('ns/a')).toBe(20);
    queue.shutDown();
  });

  it('an earlier delayed add wins over a later one; shutting down releases waiting workers', async () => {
    const queue = new WorkQueue(10, 1000);
    queue.addAfter('ns/a', 1000);
    queue.addAfter('ns/a', 20);
    await waitFor(() => queue.depth === 1 && !queue.hasDelayed('ns/a'), 2000, 'the earlier add');
    expect(await queue.get()).toBe('ns/a');
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
  });
});

describe('status', () => {
  const queues = [{ name: 'q', ready: true, messages: 1, consumers: 2 }];

  it('moves observedGeneration only on success, and keeps lastTransitionTime unless Ready flips', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-01T00:01:00Z');
    const ok = nextStatus(undefined, { ready: true, reason: 'Reconciled', message: '', generation: 1, queues }, t1);
    expect(ok).toEqual({
      observedGeneration: 1,
      queues,
      queuesReady: '1/1',
      conditions: [{ type: 'Ready', status: 'True', reason: 'Reconciled', message: '', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 }],
    });
    const again = nextStatus(ok, { ready: true, reason: 'Reconciled', message: '', generation: 2, queues }, t2);
    expect(again.conditions![0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    const failed = nextStatus(again, { ready: false, reason: 'InvalidSpec', message: 'bad', generation: 3 }, t2);
    expect(failed.observedGeneration).toBe(2);
    expect(failed.conditions![0]).toEqual({ type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'bad', lastTransitionTime: '2026-01-01T00:01:00Z', observedGeneration: 3 });
    expect(failed.queues).toEqual(queues);
  });
});

describe('bridges', () => {
  it('toBridge applies the defaults the CRD would', () => {
    expect(toBridge('b', { queues: [{ name: 'q', route: { channel: 'c.{routingKey}' }, bindings: [{ exchange: 'x', type: 'fanout' }] }], channels: [{ pattern: 'c.*', access: 'public', history: {} }] })).toEqual({
      name: 'b',
      queues: [{ name: 'q', durable: true, singleActiveConsumer: false, type: 'classic', bindings: [{ exchange: 'x', type: 'fanout', routingKey: '' }], route: { channel: 'c.{routingKey}' } }],
      channels: [{ pattern: 'c.*', access: 'public', history: { size: 1000, ttlSeconds: 3600 } }],
    });
  });

  it('toBridge carries presence to the registry only where a policy turns it on', () => {
    const bridge = toBridge('b', {
      queues: [{ name: 'q', route: { channel: 'c.{routingKey}' } }],
      channels: [{ pattern: 'room.*', access: 'authenticated', presence: true }, { pattern: 'c.*', access: 'public', presence: false }],
    });
    expect(bridge.channels).toEqual([{ pattern: 'room.*', access: 'authenticated', presence: true }, { pattern: 'c.*', access: 'public' }]);
  });

  it('bridgeProblems: what the schema cannot say, one sentence each', () => {
    const bridge = toBridge('b', {
      queues: [
        { name: 'amq.q', route: { channel: 'c.{routingKey}' }, bindings: [{ exchange: 'x', type: 'topic', routingKey: 'a' }] },
        { name: 'r', route: { channel: 'c.{routingKey}' }, bindings: [{ exchange: 'x', type: 'direct', routingKey: 'b' }] },
      ],
      channels: [
        { pattern: 'c.*', access: 'public' },
        { pattern: 'c.*', access: 'authenticated' },
      ],
    });
    expect(bridgeProblems(bridge)).toEqual([
      'queue amq.q: names starting with amq. are reserved by RabbitMQ',
      'exchange x is bound as topic and as direct; an exchange has one type',
      'channel pattern c.* is declared twice',
    ]);
  });

  it('redacts the password in URLs', () => {
    expect(redactUrl('amqp://user:s3cret@host:5672/vhost')).toBe('amqp://user:***@host:5672/vhost');
    expect(redactUrl('amqp://host:5672')).toBe('amqp://host:5672');
    expect(redactUrl('amqp://u:a@n1:5672,amqp://u:b@n2:5672')).toBe('amqp://u:***@n1:5672,amqp://u:***@n2:5672');
  });
});

describe('the fake API server', () => {
  it('merge-patches as RFC 7386 says', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1, 2] }, { a: null, b: { c: 4 }, e: [3], f: 'new' })).toEqual({ b: { c: 4, d: 3 }, e: [3], f: 'new' });
  });
});
