import type { Redis } from 'ioredis';
import { z } from 'zod';
import { OFFSET, compareOffsets, decideSubscribe, registryKeys, type ChannelPolicy, type ClientSocket, type Counter, type Envelope } from '@socketbridge/common';
import { claimsOf } from './access.js';
import { Refusal } from './hooks.js';

/** Most entries one `recover` call returns; the client asks again from the last offset while `more`. */
export const RECOVER_PAGE_LIMIT = 500;

const request = z.object({
  channel: z.string().min(1).max(200),
  since: z.string().regex(OFFSET, 'since must be an offset such as 1700000000000-0'),
  limit: z.number().int().min(1).max(RECOVER_PAGE_LIMIT).optional(),
});

/**
 * `recovered: false` still carries the history that is left, from its start: the client reports
 * the gap, then resumes from those entries instead of stumbling over the same gap again.
 */
export type RecoverReply =
  | { recovered: true; entries: Envelope[]; more: boolean }
  | { recovered: false; reason: string; entries: Envelope[]; more: boolean };

/**
 * The worker's `recover` procedure: `{channel, since}` → the channel's history entries after
 * `since`, a page at a time, or `{recovered: false}` when history no longer reaches back that far
 * (the entry at `since` itself was trimmed or expired, so entries after it may have been too).
 */
export function recoverProcedure(redis: Redis, policies: () => ChannelPolicy[], outcomes?: Counter<'outcome'>) {
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

    const key = registryKeys.history(channel);
    const reachesBack = since === '0-0' || (await redis.xrange(key, since, since, 'COUNT', 1)).length > 0;
    const rows = await redis.xrange(key, reachesBack ? `(${since}` : '-', '+', 'COUNT', limit + 1);
    const entries: Envelope[] = [];
    for (const [offset, fields] of rows.slice(0, limit)) {
      const values = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) values.set(fields[i]!, fields[i + 1]!);
      const body = JSON.parse(values.get('e') ?? '{}') as { id: string; ts: number; data: unknown };
      entries.push({ id: body.id, offset, prev: values.get('p') ?? '0-0', ts: body.ts, data: body.data });
    }
    // Offsets from XRANGE are already ordered; the check keeps a corrupted stream from reordering a client.
    entries.sort((a, b) => compareOffsets(a.offset, b.offset));
    const more = rows.length > limit;
    if (!reachesBack) return { recovered: false, reason: `history of ${channel} no longer reaches back to ${since}`, entries, more };
    return { recovered: true, entries, more };
  }
}
