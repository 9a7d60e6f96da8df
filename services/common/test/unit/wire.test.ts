import { describe, expect, it } from 'vitest';
import { FIRST_PREV, HISTORY_FIELDS, OFFSET, envelopeFromHistory } from '../../src/wire.js';

describe('envelopeFromHistory', () => {
  it('rebuilds the envelope from a stream entry, field order regardless', () => {
    const entry = JSON.stringify({ id: 'm1', ts: 5, data: { a: 1 } });
    const expected = { id: 'm1', offset: '9-1', prev: '9-0', ts: 5, data: { a: 1 } };
    expect(envelopeFromHistory('9-1', [HISTORY_FIELDS.prev, '9-0', HISTORY_FIELDS.entry, entry])).toEqual(expected);
    expect(envelopeFromHistory('9-1', [HISTORY_FIELDS.entry, entry, HISTORY_FIELDS.prev, '9-0'])).toEqual(expected);
  });

  it('takes a missing prev as the start of the channel', () => {
    expect(envelopeFromHistory('1-0', [HISTORY_FIELDS.entry, '{"id":"a","ts":1,"data":null}']).prev).toBe(FIRST_PREV);
  });
});

describe('OFFSET', () => {
  it('accepts stream ids and nothing else', () => {
    for (const good of ['0-0', '1700000000000-12']) expect(OFFSET.test(good)).toBe(true);
    for (const bad of ['', '1', '-1', '1-', 'a-1', '1-1-1', `${'9'.repeat(21)}-0`]) expect(OFFSET.test(bad)).toBe(false);
  });
});
