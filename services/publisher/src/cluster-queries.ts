import { randomUUID } from 'node:crypto';
import {
  CONTROL_CHANNEL,
  RESERVED_CHANNELS,
  parseQueryReply,
  registryKeys,
  type ClusterLink,
  type Logger,
  type QueryReply,
  type RedisClient,
} from '@socketbridge/common';

export interface ClusterAnswer {
  /** Every live worker's reply that came in time. */
  replies: QueryReply[];
  /** Live workers (by instance id) that did not answer in time: a worker just killed, or a stalled one. */
  missing: string[];
}

/**
 * Asks every worker about a channel and gathers their answers: the publisher publishes a query on
 * the control channel and each worker answers on this publisher's own reply channel
 * (`#sb.reply.<instanceId>`). Nothing is stored per subscription: a worker answers from its own
 * memory, so a killed worker's sockets stop counting the moment it dies. Which workers to wait for
 * comes from their liveness entries in Redis (`registryKeys.liveWorkers`), which a killed worker
 * stops renewing; until its entry expires, queries wait `timeoutMs` for it and say it is missing.
 */
export class ClusterQueries {
  readonly replyChannel: string;
  private readonly waiting = new Map<string, (reply: QueryReply) => void>();

  constructor(
    private readonly link: ClusterLink,
    private readonly redis: RedisClient,
    private readonly logger: Logger,
    private readonly timeoutMs: number,
  ) {
    this.replyChannel = `${RESERVED_CHANNELS.replyPrefix}${link.instanceId}`;
    link.listen(this.replyChannel, (data) => {
      const reply = parseQueryReply(data);
      if (!reply) {
        this.logger.warn('ignoring a query reply of an unknown shape');
        return;
      }
      this.waiting.get(reply.id)?.(reply);
    });
  }

  /** Whether workers can answer yet: the reply channel's shard confirmed our subscription. */
  ready(): boolean {
    return this.link.isSubscribed(this.replyChannel);
  }

  async ask(channel: string, clients: boolean, limit: number): Promise<ClusterAnswer> {
    const live = new Set(await this.redis.zrangebyscore(registryKeys.liveWorkers, Date.now(), '+inf'));
    const id = randomUUID();
    const replies = new Map<string, QueryReply>();
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.timeoutMs);
        // No live worker known (none registered yet, or Redis just lost the set): wait out the timeout
        // for whoever answers rather than answer 0 at once.
        const check = () => {
          if (live.size > 0 && [...live].every((worker) => replies.has(worker))) {
            clearTimeout(timer);
            resolve();
          }
        };
        this.waiting.set(id, (reply) => {
          replies.set(reply.instanceId, reply);
          check();
        });
        this.link.publish(CONTROL_CHANNEL, [{ type: 'query', id, channel, replyTo: this.replyChannel, clients, limit }]).then(check, (error: unknown) => {
          clearTimeout(timer);
          reject(error as Error);
        });
      });
    } finally {
      this.waiting.delete(id);
    }
    return { replies: [...replies.values()], missing: [...live].filter((worker) => !replies.has(worker)) };
  }
}
