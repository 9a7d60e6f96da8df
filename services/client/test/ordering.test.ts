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
