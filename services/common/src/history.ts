import type { RedisClient } from './redis.js';
import { registryKeys } from './bridges.js';
import { compareOffsets, type HistoryPolicy } from './channels.js';
import { FIRST_PREV, HISTORY_FIELDS, envelopeFromHistory, type Envelope } from './wire.js';

/**
 * Appends a channel's next entries to its history and returns `offset prev` for each, in one
 * atomic step: `prev` is the entry before it, so clients can tell a gap; an id seen before returns
 * the offset it got then instead of a second entry, so a redelivered message reaches clients as a
 * duplicate they drop rather than a new message. KEYS: stream, ids. ARGV: maxlen, ttl, then (id,
 * entry, idempotent) per message. The stream's field names are the wire contract's (HISTORY_FIELDS).
 */
const APPEND = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '${FIRST_PREV}'
if last[1] then prev = last[1][1] end
local out = {}
local remembered = false
for i = 3, #ARGV, 3 do
  local seen = false
  if ARGV[i + 2] == '1' then seen = redis.call('HGET', KEYS[2], ARGV[i]) end
  if seen then
    out[#out + 1] = seen
  else
    local offset = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '${HISTORY_FIELDS.prev}', prev, '${HISTORY_FIELDS.entry}', ARGV[i + 1])
    if ARGV[i + 2] == '1' then
      redis.call('HSET', KEYS[2], ARGV[i], offset .. ' ' .. prev)
      remembered = true
    end
    out[#out + 1] = offset .. ' ' .. prev
    prev = offset
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if remembered then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return out`;

type AppendingRedis = RedisClient & {
  sbAppend(stream: string, ids: string, ...args: string[]): Promise<string[]>;
};

/** One message for `append`: its id, its `HistoryEntry` as JSON, and whether a redelivery must keep its offset. */
export interface HistoryItem {
  id: string;
  entry: string;
  idempotent: boolean;
}

/** A page of history after an offset, as `recover` answers it. */
export interface HistoryPage {
  /** false: the entry at `since` is gone (trimmed or expired), so entries after it may be too; `entries` start at the oldest left. */
  reachesBack: boolean;
  entries: Envelope[];
  /** More entries follow the page. */
  more: boolean;
}

/**
 * Channel history in Redis streams (`socketbridge:history:{<channel>}`): the one owner of the append
 * script the publisher runs and of the reads behind the worker's `recover`.
 */
export class HistoryStore {
  private readonly redis: AppendingRedis;

  constructor(redis: RedisClient) {
    redis.defineCommand('sbAppend', { numberOfKeys: 2, lua: APPEND });
    this.redis = redis as AppendingRedis;
  }

  /** Appends in order, in one atomic step; returns each item's `{offset, prev}`. */
  async append(channel: string, policy: HistoryPolicy, items: readonly HistoryItem[]): Promise<Array<{ offset: string; prev: string }>> {
    const args = [String(policy.size), String(policy.ttlSeconds * 1000)];
    for (const { id, entry, idempotent } of items) args.push(id, entry, idempotent ? '1' : '0');
    const positions = await this.redis.sbAppend(registryKeys.history(channel), registryKeys.historyIds(channel), ...args);
    return positions.map((position) => {
      const [offset, prev] = position.split(' ') as [string, string];
      return { offset, prev };
    });
  }

  /** Up to `limit` entries after `since` (`0-0`: from the start). */
  async after(channel: string, since: string, limit: number): Promise<HistoryPage> {
    const key = registryKeys.history(channel);
    const reachesBack = since === FIRST_PREV || (await this.redis.xrange(key, since, since, 'COUNT', 1)).length > 0;
    const rows = await this.redis.xrange(key, reachesBack ? `(${since}` : '-', '+', 'COUNT', limit + 1);
    const entries = rows.slice(0, limit).map(([offset, fields]) => envelopeFromHistory(offset, fields));
    // Offsets from XRANGE are already ordered; the check keeps a corrupted stream from reordering a client.
    entries.sort((a, b) => compareOffsets(a.offset, b.offset));
    return { reachesBack, entries, more: rows.length > limit };
  }
}
