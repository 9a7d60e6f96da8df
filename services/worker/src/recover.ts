import type { RedisClient } from '@socketbridge/common';
import { z } from 'zod';
import {
  HistoryStore,
  OFFSET,
  RECOVER_PAGE_LIMIT,
  decideSubscribe,
  type ChannelPolicy,
  type ClientSocket,
  type Counter,
  type RecoverReply,
} from '@socketbridge/common';
import { claimsOf } from './access.js';
import { Refusal } from './hooks.js';

const request = z.object({
  channel: z.string().min(1).max(200),
  since: z.string().regex(OFFSET, 'since must be an offset such as 1700000000000-0'),
  limit: z.number().int().min(1).max(RECOVER_PAGE_LIMIT).optional(),
});

/**
 * The worker's `recover` procedure: `{channel, since}` → the channel's history entries after
 * `since`, a page at a time, or `{recovered: false}` when history no longer reaches back that far
 * (the entry at `since` itself was trimmed or expired, so entries after it may have been too).
 */
export function recoverProcedure(redis: RedisClient, policies: () => ChannelPolicy[], outcomes?: Counter<'outcome'>) {
  const history = new HistoryStore(redis);
  return async (socket: ClientSocket, data: unknown): Promise<RecoverReply> => {
    const reply = await recover(socket, data).catch((error: unknown) => {
      outcomes?.inc({ outcome: 'refused' });
      throw error;
    });
    outcomes?.inc({ outcome: reply.recovered ? 'recovered' : 'gap' });
    return reply;
  };

  async function recover(socket: ClientSocket, data: unknown): Promise<RecoverReply> {
    const parsed = request.safeParse(data);
    if (!parsed.success) {
      throw new Refusal('bad_request', `recover wants {channel, since, limit?}: ${parsed.error.issues.map((i) => i.message).join('; ')}`, 'BadRecoverRequestError');
    }
    const { channel, since } = parsed.data;
    const limit = parsed.data.limit ?? RECOVER_PAGE_LIMIT;
    const decision = decideSubscribe(policies(), channel, claimsOf(socket.authToken));
    if (!decision.allowed) throw new Refusal(decision.reason, decision.message, 'RecoverRefusedError');

    const { reachesBack, entries, more } = await history.after(channel, since, limit);
    if (!reachesBack) return { recovered: false, reason: `history of ${channel} no longer reaches back to ${since}`, entries, more };
    return { recovered: true, entries, more };
  }
}
