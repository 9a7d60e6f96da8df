import type { Redis } from 'ioredis';
import { registryKeys, type ClusterLink, type Envelope, type HistoryPolicy } from '@socketbridge/common';

export interface PublishInput {
  channel: string;
  id: string;
  /** When the message entered SocketBridge (ms since the epoch). */
  ts: number;
  data: unknown;
  history: HistoryPolicy;
  /** The id came from the producer (AMQP messageId): a redelivery of it must keep its offset. */
  idempotent: boolean;
}

/**
 * Appends one entry to a channel's history and returns `{offset, prev}`, in one atomic step:
 * `prev` is the entry before it, so clients can tell a gap; an id seen before returns the offset
 * it got then instead of a second entry, so a redelivered message reaches clients as a duplicate
 * they drop rather than a new message.
 */
const APPEND = `
if ARGV[5] == '1' then
  local seen = redis.call('HGET', KEYS[2], ARGV[1])
  if seen then return {seen, 0} end
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
local offset = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'p', prev, 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[2], ARGV[1], offset .. ' ' .. prev)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {offset .. ' ' .. prev, 1}
end
return {offset .. ' ' .. prev, 1}`;

type AppendingRedis = Redis & {
  sbAppend(stream: string, ids: string, id: string, entry: string, maxlen: string, ttlMs: string, idempotent: string): Promise<[string, number]>;
};

/**
 * A message's way into the cluster: append it to the channel's history (the offset clients
 * recover from), then publish the envelope on the channel's broker shard and wait for its ack.
 * Per channel one message at a time, so history offsets and deliveries keep arrival order.
 */
export class Pipeline {
  private readonly tails = new Map<string, Promise<unknown>>();
  private readonly redis: AppendingRedis;

  constructor(
    redis: Redis,
    private readonly link: ClusterLink,
  ) {
    redis.defineCommand('sbAppend', { numberOfKeys: 2, lua: APPEND });
    this.redis = redis as AppendingRedis;
  }

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
    const [positions] = await this.redis.sbAppend(
      registryKeys.history(input.channel),
      registryKeys.historyIds(input.channel),
      input.id,
      JSON.stringify({ id: input.id, ts: input.ts, data: input.data }),
      String(input.history.size),
      String(input.history.ttlSeconds * 1000),
      input.idempotent ? '1' : '0',
    );
    const [offset, prev] = positions.split(' ') as [string, string];
    const envelope: Envelope = { id: input.id, offset, prev, ts: input.ts, data: input.data };
    await this.link.publish(input.channel, envelope);
    return envelope;
  }
}
