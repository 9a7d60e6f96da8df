import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { registryKeys } from './bridges.js';
import { compareOffsets, type HistoryPolicy } from './channels.js';
import { FIRST_PREV, HISTORY_FIELDS, envelopeFromHistory, type Envelope, type HistoryEntry } from './wire.js';

/**
 * Appends a channel's next entries to its history and returns `offset prev id` for each, in one
 * atomic step: `prev` is the entry before it, so clients can tell a gap; an id seen before returns
 * the offset it got then instead of a second entry, so a redelivered message reaches clients as a
 * duplicate they drop rather than a new message.
 *
 * A message without a producer's id (`redelivery`, docs/reliability.md) also has its id settled
 * here, in the same step and slot: a redelivery takes the id recorded under its content hash, if
 * any (its entry rewritten to carry it); otherwise the fresh id it came with is recorded, with the
 * history's TTL. Record and append are one atomic step, so no crash falls between them.
 *
 * KEYS: stream, ids, then each redelivery record named by an item (all in the channel's hash
 * tag). ARGV: maxlen, ttl (ms), then per message: id, entry, idempotent (1/0), its record's index
 * in KEYS (0: none), redelivered (1/0). The stream's field names are the wire contract's (HISTORY_FIELDS).
 */
const APPEND = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '${FIRST_PREV}'
if last[1] then prev = last[1][1] end
local out = {}
local remembered = false
for i = 3, #ARGV, 5 do
  local id, entry, idempotent = ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1'
  local record = KEYS[tonumber(ARGV[i + 3])]
  if record then
    local earlier = ARGV[i + 4] == '1' and redis.call('GET', record)
    if earlier then
      if earlier ~= id then
        -- The entry starts with its id (historyEntry); put the recorded one in its place.
        local head = '{"id":' .. cjson.encode(id)
        if string.sub(entry, 1, #head) ~= head then return redis.error_reply('entry does not start with its id') end
        entry = '{"id":' .. cjson.encode(earlier) .. string.sub(entry, #head + 1)
        id = earlier
      end
    else
      redis.call('SET', record, id, 'PX', ARGV[2])
    end
  end
  local seen = false
  if idempotent then seen = redis.call('HGET', KEYS[2], id) end
  if seen then
    out[#out + 1] = seen .. ' ' .. id
  else
    local offset = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '${HISTORY_FIELDS.prev}', prev, '${HISTORY_FIELDS.entry}', entry)
    if idempotent then
      redis.call('HSET', KEYS[2], id, offset .. ' ' .. prev)
      remembered = true
    end
    out[#out + 1] = offset .. ' ' .. prev .. ' ' .. id
    prev = offset
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if remembered then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return out`;

const APPEND_SHA = createHash('sha1').update(APPEND).digest('hex');

/** A history entry's JSON (the `e` field), its id first: the append script may swap that id for a recorded one. */
export function historyEntry(entry: HistoryEntry): string {
  return JSON.stringify({ id: entry.id, ts: entry.ts, data: entry.data } satisfies HistoryEntry);
}

/** One message for `append`. */
export interface HistoryItem {
  /** Its id; with `redelivery`, a fresh one (a UUID) that a first delivery keeps. */
  id: string;
  /** Its `HistoryEntry`, as `historyEntry` encodes it. */
  entry: string;
  /** A redelivery must keep its offset (the id hash remembers it). */
  idempotent: boolean;
  /**
   * A message without a producer's id: its content hash's record (`registryKeys.redeliveryId`),
   * and whether RabbitMQ says it was delivered before (then a recorded id replaces `id`).
   */
  redelivery?: { key: string; redelivered: boolean };
}

/** Where `append` put an item, and the id it has (a redelivery's recorded one, else the item's). */
export interface HistoryPosition {
  offset: string;
  prev: string;
  id: string;
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
  constructor(private readonly redis: RedisClient) {}

  /** Appends in order, in one atomic step; returns each item's position and id. */
  async append(channel: string, policy: HistoryPolicy, items: readonly HistoryItem[]): Promise<HistoryPosition[]> {
    const keys = [registryKeys.history(channel), registryKeys.historyIds(channel)];
    const args = [String(policy.size), String(policy.ttlSeconds * 1000)];
    for (const { id, entry, idempotent, redelivery } of items) {
      if (redelivery) keys.push(redelivery.key);
      args.push(id, entry, idempotent ? '1' : '0', redelivery ? String(keys.length) : '0', redelivery?.redelivered ? '1' : '0');
    }
    const positions = await this.run(keys, args);
    return positions.map((position) => {
      // Offsets hold no spaces; the id, the rest, may.
      const [offset, prev] = position.split(' ', 2) as [string, string];
      return { offset, prev, id: position.slice(offset.length + prev.length + 2) };
    });
  }

  /**
   * EVALSHA, then EVAL once where the script is not loaded yet (a new, restarted or promoted node).
   * Not ioredis' defineCommand: with a variable key count its first argument is that count, and a
   * Cluster client's auto-pipelining groups commands by their first argument, so appends to
   * channels on different nodes would share one pipeline and fail; for EVALSHA it finds the first key.
   */
  private async run(keys: string[], args: string[]): Promise<string[]> {
    try {
      return (await this.redis.evalsha(APPEND_SHA, keys.length, ...keys, ...args)) as string[];
    } catch (error) {
      if (!(error as Error).message.startsWith('NOSCRIPT')) throw error;
      return (await this.redis.eval(APPEND, keys.length, ...keys, ...args)) as string[];
    }
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
