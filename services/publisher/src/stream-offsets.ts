import { createHash } from 'node:crypto';
import type { ConsumeMessage } from 'amqplib';
import { registryKeys, type RedisClient } from '@socketbridge/common';

/**
 * Where each stream queue's consumer resumes: the offset after the last message handled (appended
 * to history or dead-lettered) with every earlier one handled too. Kept in one Redis hash under the
 * `{stream-offsets}` hash tag (docs/scaling.md), so a restarted publisher, or the replica that
 * takes over, starts where the last one stopped rather than at `next` (losing what came meanwhile)
 * or `first` (sending everything again).
 */
export class StreamOffsets {
  constructor(private readonly redis: RedisClient) {}

  /** The stored resume offset, or undefined when this queue was never consumed. */
  async get(queue: string): Promise<number | undefined> {
    const value = await this.redis.hget(registryKeys.streamOffsets, queue);
    return value === null ? undefined : Number(value);
  }

  async set(queue: string, offset: number): Promise<void> {
    await this.redis.hset(registryKeys.streamOffsets, queue, String(offset));
  }
}

/**
 * One stream consumer's progress. Messages are handled concurrently (each channel has its own step
 * in the pipeline), so they finish out of order: the resume offset moves only past a run of
 * handled ones, and a message that failed holds it until the stream is consumed again from there.
 */
export class StreamProgress {
  private readonly pending: number[] = [];
  private readonly finished = new Set<number>();
  /** The lowest offset not yet handled, once any message was handled in order. */
  resumeAt: number | undefined;

  /** The lowest offset taken and not yet handled. */
  get firstPending(): number | undefined {
    return this.pending[0];
  }

  begin(offset: number): void {
    this.pending.push(offset);
  }

  /** Marks `offset` handled; true when the resume offset moved. */
  done(offset: number): boolean {
    this.finished.add(offset);
    let moved = false;
    while (this.pending.length > 0 && this.finished.has(this.pending[0]!)) {
      const head = this.pending.shift()!;
      this.finished.delete(head);
      this.resumeAt = head + 1;
      moved = true;
    }
    return moved;
  }
}

/**
 * A message that carries no messageId: what the history append needs to give it a stable id, so
 * its redelivery keeps its history offset (docs/reliability.md). RabbitMQ tells two identical
 * publishes apart by nothing a consumer sees, so the id is not the content's hash alone: the first
 * delivery takes a fresh id and the append script records hash → id for as long as the channel's
 * history remembers ids; a redelivery (the `redelivered` flag, or a quorum queue's
 * x-delivery-count) reuses the recorded id, and the append, idempotent by id, keeps the first
 * offset. A first delivery always gets a new id: two identical publishes stay two.
 */
export function redeliveryOf(queue: string, channel: string, message: ConsumeMessage): { key: string; redelivered: boolean } {
  const headers = (message.properties.headers ?? {}) as Record<string, unknown>;
  return {
    key: registryKeys.redeliveryId(channel, contentHash(queue, message)),
    redelivered: message.fields.redelivered || Number(headers['x-delivery-count'] ?? 0) > 0,
  };
}

/** What identifies a publish to a consumer: queue, exchange, routing key, body and properties (not the delivery's own headers). */
export function contentHash(queue: string, message: ConsumeMessage): string {
  const { headers, ...properties } = message.properties;
  const kept = Object.entries((headers ?? {}) as Record<string, unknown>)
    .filter(([name]) => name !== 'x-delivery-count' && name !== 'x-death')
    .sort(([a], [b]) => (a < b ? -1 : 1));
  const described = JSON.stringify([queue, message.fields.exchange, message.fields.routingKey, Object.entries(properties).sort(([a], [b]) => (a < b ? -1 : 1)), kept]);
  return createHash('sha256').update(described).update('\0').update(message.content).digest('base64url');
}
