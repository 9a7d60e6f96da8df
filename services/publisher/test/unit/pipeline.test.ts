import { describe, expect, it } from 'vitest';
import { MAX_BATCH, MAX_BATCH_BYTES, batchSize } from '../../src/pipeline.js';

describe('Pipeline batchSize', () => {
  it('takes everything waiting when it fits', () => {
    expect(batchSize([10, 20, 30])).toBe(3);
    expect(batchSize([])).toBe(0);
  });

  it('stops at MAX_BATCH messages', () => {
    expect(batchSize(Array.from({ length: MAX_BATCH + 5 }, () => 1))).toBe(MAX_BATCH);
  });

  it('stops before the entry that would pass MAX_BATCH_BYTES, and fills up to it exactly', () => {
    const half = MAX_BATCH_BYTES / 2;
    expect(batchSize([half, half, 1])).toBe(2);
    expect(batchSize([half, half + 1])).toBe(1);
  });

  it('always takes the first entry, however big, so an oversized message cannot stall its channel', () => {
    expect(batchSize([MAX_BATCH_BYTES * 3, 1])).toBe(1);
  });
});
