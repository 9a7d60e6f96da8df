import type { Redis } from 'ioredis';
import { registryKeys, type ClusterLink, type Envelope, type HistoryPolicy } from '@socketbridge/common';

export interface PublishInput {
  channel: string;
  id: string;
  /** When the message entered SocketBridge (ms since the epoch). */
  ts: number;
  data: unknown;
  history: HistoryPolicy;
}

/**
 * A message's way into the cluster: append it to the channel's history (the offset clients
 * recover from), then publish the envelope on the channel's broker shard and wait for its ack.
 * Per channel one message at a time, so history offsets and deliveries keep arrival order.
 */
export class Pipeline {
  private readonly tails = new Map<string, Promise<unknown>>();

  constructor(
    private readonly redis: Redis,
    private readonly link: ClusterLink,
  ) {}

  publish(input: PublishInput): Promise<Envelope> {
    const previous = this.tails.get(input.channel) ?? Promise.resolve();
    const next = previous.then(
      () => this.run(input),
      () => this.run(input),
    );
    this.tails.set(input.channel, next);
    const forget = () => {
      if (this.tails.get(input.channel) === next) this.tails.delete(input.channel);
    };
    next.then(forget, forget);
    return next;
  }

  /** Resolves once every message handed in so far has settled. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.tails.values()]);
  }

  private async run(input: PublishInput): Promise<Envelope> {
    const key = registryKeys.history(input.channel);
    const entry = JSON.stringify({ id: input.id, ts: input.ts, data: input.data });
    const results = await this.redis
      .multi()
      .xadd(key, 'MAXLEN', '~', String(input.history.size), '*', 'e', entry)
      .pexpire(key, input.history.ttlSeconds * 1000)
      .exec();
    const [error, offset] = results?.[0] ?? [new Error('history write returned nothing'), null];
    if (error || typeof offset !== 'string') throw error ?? new Error('history write returned no offset');
    const envelope: Envelope = { id: input.id, offset, ts: input.ts, data: input.data };
    await this.link.publish(input.channel, envelope);
    return envelope;
  }
}
