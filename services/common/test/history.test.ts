import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { redisUrl } from '@socketbridge/devkit';
import { registryKeys } from '../src/bridges.js';
import { HistoryStore, historyEntry, type HistoryItem } from '../src/history.js';
import { FIRST_PREV, HISTORY_FIELDS } from '../src/wire.js';

// The append script and the reads behind recover, against the run's own Redis (vitest's global setup).
const redis = new Redis(redisUrl());
const store = new HistoryStore(redis);
const policy = { size: 1000, ttlSeconds: 60 };
const channel = () => `history-test.${randomUUID()}`;
const item = (id: string, idempotent = false) => ({ id, entry: historyEntry({ id, ts: 1, data: { id } }), idempotent });
/** A message without a producer's id, as the publisher hands it in: a fresh id and its content's record. */
const unnamed = (c: string, content: string, redelivered: boolean): HistoryItem => {
  const id = randomUUID();
  return { id, entry: historyEntry({ id, ts: 1, data: { content } }), idempotent: true, redelivery: { key: registryKeys.redeliveryId(c, content), redelivered } };
};

afterAll(() => redis.quit());

describe('HistoryStore', () => {
  it('appends in order, each entry chained to the one before, and reads them back as envelopes', async () => {
    const c = channel();
    const first = await store.append(c, policy, [item('a'), item('b')]);
    const second = await store.append(c, policy, [item('c')]);
    expect(first[0]!.prev).toBe(FIRST_PREV);
    expect(first[1]!.prev).toBe(first[0]!.offset);
    expect(second[0]!.prev).toBe(first[1]!.offset);

    const page = await store.after(c, FIRST_PREV, 10);
    expect(page).toMatchObject({ reachesBack: true, more: false });
    expect(page.entries.map((e) => [e.id, e.prev, e.data])).toEqual([
      ['a', FIRST_PREV, { id: 'a' }],
      ['b', first[0]!.offset, { id: 'b' }],
      ['c', first[1]!.offset, { id: 'c' }],
    ]);
    // The stream carries the wire contract's field names, which other readers rely on.
    const [[, fields]] = (await redis.xrange(registryKeys.history(c), '-', '+', 'COUNT', 1)) as [[string, string[]]];
    expect(fields.filter((_, i) => i % 2 === 0)).toEqual([HISTORY_FIELDS.prev, HISTORY_FIELDS.entry]);
  });

  it('gives a redelivered idempotent id the offset it got the first time, and no second entry', async () => {
    const c = channel();
    const [once] = await store.append(c, policy, [item('m1', true)]);
    const [again, next] = await store.append(c, policy, [item('m1', true), item('m2', true)]);
    expect(again).toEqual(once);
    expect(next!.prev).toBe(once!.offset);
    expect((await store.after(c, FIRST_PREV, 10)).entries.map((e) => e.id)).toEqual(['m1', 'm2']);
  });

  it('pages after an offset, and says when history no longer reaches back to it', async () => {
    const c = channel();
    const positions = await store.append(c, policy, ['a', 'b', 'c', 'd'].map((id) => item(id)));
    const page = await store.after(c, positions[0]!.offset, 2);
    expect(page).toMatchObject({ reachesBack: true, more: true });
    expect(page.entries.map((e) => e.id)).toEqual(['b', 'c']);

    await redis.xdel(registryKeys.history(c), positions[0]!.offset, positions[1]!.offset);
    const gap = await store.after(c, positions[0]!.offset, 10);
    expect(gap.reachesBack).toBe(false);
    expect(gap.entries.map((e) => e.id)).toEqual(['c', 'd']);
  });

  it('expires the stream with its policy', async () => {
    const c = channel();
    await store.append(c, { size: 10, ttlSeconds: 30 }, [item('a')]);
    const ttl = await redis.pttl(registryKeys.history(c));
    expect(ttl).toBeGreaterThan(25_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
  });

  it('settles ids of messages without one: a first delivery keeps its fresh id, a redelivery takes the recorded one and its offset', async () => {
    const c = channel();
    // Two identical first deliveries in one call stay two messages; the record names the later one.
    const [a, twin, b] = [unnamed(c, 'same', false), unnamed(c, 'same', false), unnamed(c, 'other', false)];
    const first = await store.append(c, policy, [a, twin, b]);
    expect(first.map((p) => p.id)).toEqual([a.id, twin.id, b.id]);
    expect(new Set(first.map((p) => p.offset)).size).toBe(3);
    expect(await redis.get(registryKeys.redeliveryId(c, 'same'))).toBe(twin.id);
    const ttl = await redis.pttl(registryKeys.redeliveryId(c, 'other'));
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);

    // Redelivered, each with a fresh id of its own: the recorded ids and their first offsets come back.
    const again = await store.append(c, policy, [unnamed(c, 'other', true), unnamed(c, 'same', true)]);
    expect(again).toEqual([first[2], first[1]]);
    // A redelivery with nothing recorded keeps its own id and records it; a first delivery never looks.
    const [lone, fresh] = [unnamed(c, 'lone', true), unnamed(c, 'other', false)];
    const more = await store.append(c, policy, [lone, fresh]);
    expect(more.map((p) => p.id)).toEqual([lone.id, fresh.id]);
    expect(more[0]!.prev).toBe(first[2]!.offset);
    expect(await redis.get(registryKeys.redeliveryId(c, 'lone'))).toBe(lone.id);
    expect((await store.after(c, FIRST_PREV, 10)).entries.map((e) => e.id)).toEqual([a.id, twin.id, b.id, lone.id, fresh.id]);
  });

  it('writes a recorded id into the entry when its first entry is gone', async () => {
    const c = channel();
    const [first] = await store.append(c, policy, [unnamed(c, 'gone', false)]);
    await redis.del(registryKeys.historyIds(c));
    const [again] = await store.append(c, policy, [unnamed(c, 'gone', true)]);
    expect(again!.id).toBe(first!.id);
    expect(again!.offset).not.toBe(first!.offset);
    const entries = (await store.after(c, FIRST_PREV, 10)).entries;
    expect(entries.map((e) => [e.id, e.data])).toEqual([
      [first!.id, { content: 'gone' }],
      [first!.id, { content: 'gone' }],
    ]);
  });
});
