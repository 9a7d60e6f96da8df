import { describe, expect, it } from 'vitest';
import { instanceUri, majorVersion, normalizeIp } from '@socketbridge/common';
import { Membership } from '../src/membership.js';

describe('membership', () => {
  it('lists URIs sorted and without duplicates, so every worker hashes over the same list', () => {
    const m = new Membership();
    m.join({ socketId: 'a', type: 'scc-broker', instanceId: 'a', uri: 'ws://10.0.0.2:8888', joinedAt: 1 });
    m.join({ socketId: 'b', type: 'scc-broker', instanceId: 'b', uri: 'ws://10.0.0.1:8888', joinedAt: 2 });
    m.join({ socketId: 'c', type: 'scc-broker', instanceId: 'c', uri: 'ws://10.0.0.1:8888', joinedAt: 3 });
    m.join({ socketId: 'd', type: 'scc-worker', instanceId: 'd', uri: 'ws://10.0.0.9:8000', joinedAt: 4 });
    expect(m.uris('scc-broker')).toEqual(['ws://10.0.0.1:8888', 'ws://10.0.0.2:8888']);
    expect(m.leave('c')?.instanceId).toBe('c');
    expect(m.uris('scc-broker')).toEqual(['ws://10.0.0.1:8888', 'ws://10.0.0.2:8888']);
    expect(m.leave('missing')).toBeUndefined();
  });

  it('keeps snapshot times strictly increasing, even within one millisecond or when the clock steps back', () => {
    const m = new Membership();
    const times = [m.nextTime(1000), m.nextTime(1000), m.nextTime(999), m.nextTime(2000)];
    expect(times).toEqual([1000, 1001, 1002, 2000]);
  });

  it('builds member URIs as upstream does, bracketing IPv6 and unmapping IPv4-in-IPv6', () => {
    expect(instanceUri('10.1.2.3', 8888)).toBe('ws://10.1.2.3:8888');
    expect(instanceUri('fd00::1', '8888', true)).toBe('wss://[fd00::1]:8888');
    expect(normalizeIp('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeIp('::1')).toBe('::1');
    expect([majorVersion('9.2.0'), majorVersion('10.0.1'), majorVersion('undefined'), majorVersion(null)]).toEqual([9, 10, NaN, NaN]);
  });
});
