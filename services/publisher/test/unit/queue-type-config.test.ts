import { describe, expect, it } from 'vitest';
import { loadPublisherConfig } from '../../src/config.js';

const secrets = { SOCKETBRIDGE_AUTH_KEY: 'k'.repeat(32), SOCKETBRIDGE_API_KEY: 'a'.repeat(16), SCC_AUTH_KEY: 's'.repeat(32), SOCKETBRIDGE_OPS_KEY: 'o'.repeat(32) };

describe('SOCKETBRIDGE_QUEUE_TYPE', () => {
  it('defaults to classic and takes quorum and stream', () => {
    expect(loadPublisherConfig(secrets).SOCKETBRIDGE_QUEUE_TYPE).toBe('classic');
    expect(loadPublisherConfig({ ...secrets, SOCKETBRIDGE_QUEUE_TYPE: 'quorum' }).SOCKETBRIDGE_QUEUE_TYPE).toBe('quorum');
    expect(loadPublisherConfig({ ...secrets, SOCKETBRIDGE_QUEUE_TYPE: 'stream' }).SOCKETBRIDGE_QUEUE_TYPE).toBe('stream');
  });

  it('refuses another word, and a stream with a single active consumer, naming the setting', () => {
    expect(() => loadPublisherConfig({ ...secrets, SOCKETBRIDGE_QUEUE_TYPE: 'mirrored' })).toThrow(/SOCKETBRIDGE_QUEUE_TYPE: expected one of classic, quorum, stream/);
    expect(() => loadPublisherConfig({ ...secrets, SOCKETBRIDGE_QUEUE_TYPE: 'stream', SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER: 'true' })).toThrow(/SOCKETBRIDGE_QUEUE_TYPE: a stream queue has no single active consumer/);
  });
});
