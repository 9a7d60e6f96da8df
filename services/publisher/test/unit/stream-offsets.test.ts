import { describe, expect, it } from 'vitest';
import type { ConsumeMessage } from 'amqplib';
import { StreamProgress, contentHash } from '../../src/stream-offsets.js';

const message = (over: { body?: string; redelivered?: boolean; headers?: Record<string, unknown>; timestamp?: number; routingKey?: string } = {}): ConsumeMessage =>
  ({
    content: Buffer.from(over.body ?? '{"a":1}'),
    fields: { deliveryTag: 1, redelivered: over.redelivered ?? false, exchange: 'x', routingKey: over.routingKey ?? 'k', consumerTag: 't' },
    properties: { contentType: 'application/json', headers: over.headers ?? {}, timestamp: over.timestamp },
  }) as unknown as ConsumeMessage;

describe('contentHash', () => {
  it('is the same for a redelivery (x-delivery-count and the redelivered flag aside) and differs with body, routing key, queue or properties', () => {
    const first = contentHash('q', message({ headers: { b: 2, a: 1 } }));
    expect(contentHash('q', message({ redelivered: true, headers: { a: 1, b: 2, 'x-delivery-count': 1 } }))).toBe(first);
    expect(contentHash('q', message({ body: '{"a":2}', headers: { a: 1, b: 2 } }))).not.toBe(first);
    expect(contentHash('q', message({ routingKey: 'other', headers: { a: 1, b: 2 } }))).not.toBe(first);
    expect(contentHash('q2', message({ headers: { a: 1, b: 2 } }))).not.toBe(first);
    expect(contentHash('q', message({ headers: { a: 1, b: 2 }, timestamp: 1 }))).not.toBe(first);
  });
});

describe('StreamProgress', () => {
  it('moves the resume offset only past a run of handled messages, whatever order they finish in', () => {
    const progress = new StreamProgress();
    for (const offset of [10, 11, 12, 13]) progress.begin(offset);
    expect(progress.done(12)).toBe(false);
    expect(progress.resumeAt).toBeUndefined();
    expect(progress.done(10)).toBe(true);
    expect(progress.resumeAt).toBe(11);
    expect(progress.firstPending).toBe(11);
    expect(progress.done(11)).toBe(true);
    expect(progress.resumeAt).toBe(13);
    expect(progress.done(13)).toBe(true);
    expect(progress.resumeAt).toBe(14);
    expect(progress.firstPending).toBeUndefined();
  });
});
