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
