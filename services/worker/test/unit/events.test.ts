import { describe, expect, it } from 'vitest';
import { routingKeyOf } from '../../src/events.js';

const base = { ts: 1, worker: 'w', socketId: 's' };

describe('lifecycle events: routing keys', () => {
  it('are <event>.<channel> for subscriptions and <event>.<client> otherwise, - for no client', () => {
    expect(routingKeyOf({ ...base, event: 'subscribe', clientId: 'ada', channel: 'room.a' })).toBe('subscribe.room.a');
    expect(routingKeyOf({ ...base, event: 'unsubscribe', clientId: null, channel: 'news' })).toBe('unsubscribe.news');
    expect(routingKeyOf({ ...base, event: 'connect', clientId: 'ada' })).toBe('connect.ada');
    expect(routingKeyOf({ ...base, event: 'disconnect', clientId: null, code: 1000 })).toBe('disconnect.-');
    expect(routingKeyOf({ ...base, event: 'auth_failure', clientId: null, refusal: 'bad_token' })).toBe('auth_failure.-');
  });
});
