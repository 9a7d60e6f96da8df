import { describe, expect, it } from 'vitest';
import { registryKeys } from '../../src/bridges.js';

/**
 * The part of a key Redis Cluster hashes to pick its slot (the cluster spec's rule): the text
 * between the first `{` and the next `}` when non-empty, else the whole key.
 */
function hashed(key: string): string {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

// Redis Cluster refuses a script or MULTI whose keys are in different slots: the keys each one
// touches together must hash alike (docs/scaling.md).
describe('Redis keys are ready for Redis Cluster', () => {
  it("a channel's stream and id hash hash alike, and each channel by itself", () => {
    for (const channel of ['broadcast', 'client.3f1c.orders', 'a:b@c-d_e.f', 'x']) {
      expect(hashed(registryKeys.historyIds(channel)), channel).toBe(hashed(registryKeys.history(channel)));
      expect(hashed(registryKeys.history(channel))).toBe(channel);
    }
  });

  it('the registry keys hash alike, and so do the account keys', () => {
    expect(hashed(registryKeys.owners)).toBe(hashed(registryKeys.bridges));
    expect(hashed(registryKeys.changes)).toBe(hashed(registryKeys.bridges));
    const accounts = [registryKeys.emails, registryKeys.clientIds, registryKeys.client('8d3e6a0c-1b2f-4c5d-9e7f-0a1b2c3d4e5f')];
    expect(new Set(accounts.map(hashed))).toEqual(new Set(['accounts']));
    expect(hashed(registryKeys.bridges)).toBe('registry');
  });
});
