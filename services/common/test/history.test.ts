import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { redisUrl } from '@socketbridge/devkit';
import { registryKeys } from '../src/bridges.js';
import { HistoryStore } from '../src/history.js';
import { FIRST_PREV, HISTORY_FIELDS } from '../src/wire.js';

// The append script and the reads behind recover, against the run's own Redis (vitest's global setup).
const redis = new Redis(redisUrl());
const store = new HistoryStore(redis);
const policy = { size: 1000, ttlSeconds: 60 };
const channel = () => `history-test.${randomUUID()}`;
const item = (id: string, idempotent = false) => ({ id, entry: JSON.stringify({ id, ts: 1, data: { id } }), idempotent });

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
});
