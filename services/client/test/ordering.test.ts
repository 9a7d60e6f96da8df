import { describe, expect, it } from 'vitest';
import type { Envelope } from '@socketbridge/common';
import { ChannelOrder } from '../src/ordering.js';

const chain = (n: number): Envelope[] =>
  Array.from({ length: n }, (_, i) => ({ id: `m${i}`, offset: `1000-${i + 1}`, prev: i === 0 ? '0-0' : `1000-${i}`, ts: 0, data: i }));
const delivered = (out: ReturnType<ChannelOrder['accept']>) => out.filter((d) => d.kind === 'deliver').map((d) => d.envelope.data);

describe('ChannelOrder', () => {
  it('delivers a chain in order and drops what it already delivered', () => {
    const order = new ChannelOrder();
    const [a, b, c] = chain(3);
    expect(delivered(order.accept(a!))).toEqual([0]);
    expect(delivered(order.accept(b!))).toEqual([1]);
    expect(order.accept(b!)).toEqual([{ kind: 'duplicate', envelope: b }]);
    expect(order.accept(a!)[0]!.kind).toBe('duplicate');
    expect(delivered(order.accept(c!))).toEqual([2]);
    expect(order.last).toBe('1000-3');
  });

  it('holds messages behind a gap until recovery fills it, then delivers all in order', () => {
    const order = new ChannelOrder();
    const m = chain(6);
    order.accept(m[0]!);
    expect(order.accept(m[3]!)).toEqual([]);
    expect(order.accept(m[5]!)).toEqual([]);
    expect(order.hasGap).toBe(true);
    expect(delivered(order.recovered([m[1]!, m[2]!, m[3]!]))).toEqual([1, 2, 3]);
    expect(order.hasGap).toBe(true);
    expect(delivered(order.accept(m[4]!))).toEqual([4, 5]);
    expect(order.hasGap).toBe(false);
  });

  it('resumes after a given offset and skips recovered entries it already has', () => {
    const m = chain(4);
    const order = new ChannelOrder('1000-2');
    expect(order.accept(m[1]!)[0]!.kind).toBe('duplicate');
    expect(delivered(order.recovered([m[0]!, m[1]!, m[2]!, m[3]!]))).toEqual([2, 3]);
  });

  it('without recovery, releases what it holds in offset order', () => {
    const m = chain(6);
    const order = new ChannelOrder();
    order.accept(m[0]!);
    order.accept(m[4]!);
    order.accept(m[2]!);
    expect(delivered(order.releaseHeld())).toEqual([2, 4]);
    expect(delivered(order.accept(m[5]!))).toEqual([5]);
  });

  it('after an unrecoverable gap, carries on from what history still holds, then from what it held', () => {
    const m = chain(8);
    const order = new ChannelOrder();
    order.accept(m[0]!);
    order.accept(m[6]!); // held: m1..m5 are missing
    const out = order.skipGap([m[3]!, m[4]!, m[5]!]);
    expect(delivered(out)).toEqual([3, 4, 5, 6]);
    expect(delivered(order.accept(m[7]!))).toEqual([7]);
  });

  it('after a gap with no history left, a new chain starts at 0-0', () => {
    const order = new ChannelOrder('5000-1');
    const fresh: Envelope = { id: 'n', offset: '6000-0', prev: '0-0', ts: 0, data: 'n' };
    expect(order.accept(fresh)).toEqual([]);
    expect(delivered(order.skipGap([]))).toEqual(['n']);
  });

  it('compares offsets numerically, not as text', () => {
    const order = new ChannelOrder('999-9');
    const next: Envelope = { id: 'x', offset: '1000-0', prev: '999-9', ts: 0, data: 'x' };
    expect(delivered(order.accept(next))).toEqual(['x']);
  });
});

describe('ChannelOrder does not trust a jump', () => {
  const now = Date.now();
  const real = (i: number): Envelope => ({ id: `r${i}`, offset: `${now}-${i}`, prev: i === 1 ? '0-0' : `${now}-${i - 1}`, ts: now, data: i });

  it('refuses malformed envelopes and offsets in the future, and the real chain carries on', () => {
    const order = new ChannelOrder();
    const forged: Envelope = { id: 'forged', offset: '9999999999999-0', prev: '0-0', ts: now, data: 'forged' };
    expect(order.accept(forged)).toEqual([{ kind: 'refused', envelope: forged, reason: 'offset lies in the future' }]);
    for (const bad of [
      { ...real(1), offset: 'x' },
      { ...real(1), prev: 7 },
      { ...real(2), prev: real(2).offset },
      null,
    ] as unknown as Envelope[]) {
      expect(order.accept(bad)[0]!.kind).toBe('refused');
    }
    expect(order.last).toBeUndefined();
    expect(delivered(order.accept(real(1)))).toEqual([1]);
    // Even chained to what we have: a future offset would make every later real message a "duplicate".
    expect(order.accept({ ...forged, prev: real(1).offset })[0]).toMatchObject({ kind: 'refused' });
    expect(delivered(order.accept(real(2)))).toEqual([2]);
  });

  it('an envelope that does not chain is held, then refused once history up to its end did not confirm it', () => {
    const order = new ChannelOrder();
    order.accept(real(1));
    const forged: Envelope = { id: 'forged', offset: `${now}-50`, prev: `${now}-40`, ts: now, data: 'forged' };
    expect(order.accept(forged)).toEqual([]);
    expect(order.hasGap).toBe(true);
    const mark = order.mark();
    // While the recovery runs, a real message that does not chain yet arrives: this recovery cannot vouch for it.
    const later = real(4);
    expect(order.accept(later)).toEqual([]);
    // History holds 2 and 3 (not the forgery): delivered, and 4 follows them.
    expect(delivered(order.recovered([real(2), real(3)]))).toEqual([2, 3, 4]);
    expect(order.refuseUnconfirmed(mark)).toEqual([{ kind: 'refused', envelope: forged, reason: 'not in the channel history' }]);
    expect(order.hasGap).toBe(false);
    expect(order.last).toBe(later.offset);
  });

  it('keeps what arrived after the mark for the next recovery to judge', () => {
    const order = new ChannelOrder();
    order.accept(real(1));
    const mark = order.mark();
    const early = real(5);
    order.accept(early);
    expect(order.refuseUnconfirmed(mark)).toEqual([]);
    expect(order.hasGap).toBe(true);
    expect(delivered(order.recovered([real(2), real(3), real(4)]))).toEqual([2, 3, 4, 5]);
  });
});
