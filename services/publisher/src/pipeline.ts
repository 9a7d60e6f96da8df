import type { RedisClient } from '@socketbridge/common';
import { HistoryStore, historyEntry, type ClusterLink, type Envelope, type HistoryItem, type HistoryPolicy } from '@socketbridge/common';

export interface PublishInput {
  channel: string;
  id: string;
  /** When the message entered SocketBridge (ms since the epoch). */
  ts: number;
  data: unknown;
  history: HistoryPolicy;
  /** The id came from the producer (AMQP messageId): a redelivery of it must keep its offset. */
  idempotent: boolean;
  /** No producer's id: the append settles the id through this record (HistoryItem), and the envelope carries the one it settled. */
  redelivery?: HistoryItem['redelivery'];
}

/** Most messages, and bytes, of one channel handled in one step (one history append, one publish to the shard). */
export const MAX_BATCH = 100;
export const MAX_BATCH_BYTES = 1024 * 1024;

/**
 * How many of a channel's waiting entries (their encoded lengths, in arrival order) go in the next
 * step: at least one, however big, then as many as fit MAX_BATCH and MAX_BATCH_BYTES.
 */
export function batchSize(lengths: readonly number[]): number {
  let take = 0;
  for (let bytes = 0; take < lengths.length && take < MAX_BATCH && (take === 0 || bytes + lengths[take]! <= MAX_BATCH_BYTES); take++) {
    bytes += lengths[take]!;
  }
  return take;
}

interface Waiting {
  input: PublishInput;
  /** The history entry, encoded once. */
  entry: string;
  /** Until when (ms since the epoch) a failed step is tried again for this message; 0: it fails at once. */
  retryUntil: number;
  resolve(envelope: Envelope): void;
  reject(error: unknown): void;
}

export interface PipelineOptions {
  /** The pause between tries of a failed step (SOCKETBRIDGE_REQUEUE_DELAY_MS). */
  retryDelayMs: number;
  /** A step failed and will be tried again (once per step, on its first failure). */
  onRetry?: (error: unknown) => void;
}

/**
 * A message's way into the cluster: append it to the channel's history (the offset clients
 * recover from), then publish the envelope on the channel's broker shard and wait for its ack.
 * Per channel one step at a time, so history offsets and deliveries keep arrival order. Messages
 * that arrive while a channel's step is under way wait for it and then go together in the next
 * (up to MAX_BATCH): one Redis call and one publish for all of them. Nothing waits to form a batch;
 * under load batches form by themselves, and the cost per message falls as the load rises.
 *
 * A step that fails (Redis failing over, a shard moving) is tried again in place while its messages
 * may wait (`retryForMs`), the channel's later messages waiting behind it: so order holds through
 * the failure. Handing the messages back to RabbitMQ at once would let it redeliver them after newer
 * ones already taken. Past that time the step's messages, and every later one of the channel waiting
 * behind them, fail together, so RabbitMQ requeues them in their order.
 */
export class Pipeline {
  private readonly queues = new Map<string, Waiting[]>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly history: HistoryStore;
  /** Pauses between tries under way, ended early by close(). */
  private readonly pauses = new Set<() => void>();
  /** Channels whose step failed and is being tried again. */
  private readonly retrying = new Set<string>();
  private closed = false;

  constructor(
    redis: RedisClient,
    private readonly link: ClusterLink,
    private readonly options: PipelineOptions,
  ) {
    this.history = new HistoryStore(redis);
  }

  /** `retryForMs`: how long a failed step is tried again for this message (0: it fails at once). */
  publish(input: PublishInput, retryForMs = 0): Promise<Envelope> {
    // A message that may not wait fails now rather than queue behind a channel's retries (a REST
    // publish answers 503 at once, as when history is away and nothing retries).
    if (retryForMs === 0 && this.retrying.has(input.channel)) return Promise.reject(new Error('the channel is waiting for history or its shard: trying again'));
    return new Promise<Envelope>((resolve, reject) => {
      const waiting = { input, entry: historyEntry(input), retryUntil: retryForMs > 0 ? Date.now() + retryForMs : 0, resolve, reject };
      const queue = this.queues.get(input.channel);
      if (queue) queue.push(waiting);
      else this.queues.set(input.channel, [waiting]);
      if (!this.running.has(input.channel)) this.running.set(input.channel, this.drain(input.channel));
    });
  }

  /**
   * Whether the cluster can take messages: the link is ready (cluster-link.ts, linkReadiness), so a
   * publish goes to a shard every member listens on rather than failing for want of a broker.
   */
  get ready(): boolean {
    return this.link.readiness().ready;
  }

  /** Resolves once every message handed in so far has settled. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  /** Shutting down: no failed step is tried again (its messages fail, to be requeued); steps under way finish. */
  close(): void {
    this.closed = true;
    for (const end of this.pauses) end();
  }

  private async drain(channel: string): Promise<void> {
    for (;;) {
      const queue = this.queues.get(channel);
      if (!queue?.length) break;
      const batch = queue.splice(0, batchSize(queue.slice(0, MAX_BATCH).map((w) => w.entry.length)));
      for (let tries = 1; ; tries++) {
        try {
          const envelopes = await this.step(channel, batch);
          batch.forEach((w, i) => w.resolve(envelopes[i]!));
          break;
        } catch (error) {
          const retryAt = Date.now() + this.options.retryDelayMs;
          if (!this.closed && batch.every((w) => retryAt <= w.retryUntil)) {
            if (tries === 1) this.options.onRetry?.(error);
            this.retrying.add(channel);
            await this.pause();
            continue;
          }
          for (const w of [...batch, ...queue.splice(0)]) w.reject(error);
          break;
        }
      }
      this.retrying.delete(channel);
    }
    this.queues.delete(channel);
    this.running.delete(channel);
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.pauses.delete(end);
        resolve();
      };
      const timer = setTimeout(end, this.options.retryDelayMs);
      this.pauses.add(end);
    });
  }

  private async step(channel: string, batch: Waiting[]): Promise<Envelope[]> {
    // A channel's history policy is the same for every message of a step; the first one's applies.
    const items = batch.map(({ input, entry }): HistoryItem => ({ id: input.id, entry, idempotent: input.idempotent, ...(input.redelivery ? { redelivery: input.redelivery } : {}) }));
    const positions = await this.history.append(channel, batch[0]!.input.history, items);
    const envelopes = batch.map(({ input }, i): Envelope => {
      const { id, offset, prev } = positions[i]!;
      return { id, offset, prev, ts: input.ts, data: input.data };
    });
    await this.link.publish(channel, envelopes);
    return envelopes;
  }
}
