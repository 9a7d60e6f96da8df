import scErrors from 'sc-errors';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICIES, type ClientSocket, type HandshakeAuth } from '@socketbridge/common';
import { accessHooks } from '../../src/access.js';
import { Refusal } from '../../src/hooks.js';

// The hooks read only a socket's verified token: a plain object with one is the socket they see.
const socketWith = (authToken: Record<string, unknown> | null) => ({ authToken }) as ClientSocket;
const policies = [{ pattern: 'news.#', access: 'public' as const }, ...DEFAULT_POLICIES];
const hooks = accessHooks({ requireAuth: false, policies: () => policies });

describe('accessHooks on a refresh (#authenticate) and after the auth changed', () => {
  it("refuses a refreshed token as at the handshake, with the verifier's reason in the message", () => {
    const bad: HandshakeAuth = { signedAuthToken: 'a.b.c', authToken: null, authTokenError: new scErrors.AuthTokenInvalidError('the token is for another audience') };
    expect(() => hooks.authenticate!(socketWith(null), bad)).toThrow(Refusal);
    expect(() => hooks.authenticate!(socketWith(null), bad)).toThrow('the token is not valid: the token is for another audience');
    const foreign: HandshakeAuth = { signedAuthToken: 'a.b.c', authToken: { sub: 'ada' }, authTokenError: null };
    expect(() => hooks.authenticate!(socketWith(null), foreign)).toThrow('does not carry SocketBridge claims');
    const good: HandshakeAuth = { signedAuthToken: 'a.b.c', authToken: { sub: 'ada', channels: ['room.a'] }, authTokenError: null };
    expect(hooks.authenticate!(socketWith(null), good)).toBeUndefined();
  });

  it('keeps a socket on a channel only while its token (or a policy) still grants it', () => {
    const ada = socketWith({ sub: 'ada', channels: ['room.a'] });
    expect(hooks.holds!(ada, 'room.a')).toBe(true);
    expect(hooks.holds!(ada, 'client.ada')).toBe(true);
    expect(hooks.holds!(ada, 'room.b')).toBe(false);
    const narrower = socketWith({ sub: 'ada', channels: [] });
    expect(hooks.holds!(narrower, 'room.a')).toBe(false);
    const signedOut = socketWith(null);
    expect(hooks.holds!(signedOut, 'client.ada')).toBe(false);
    expect(hooks.holds!(signedOut, 'broadcast')).toBe(false);
    expect(hooks.holds!(signedOut, 'news.fr')).toBe(true); // public stays
    const bob = socketWith({ sub: 'bob', channels: [] });
    expect(hooks.holds!(bob, 'client.ada')).toBe(false); // a refresh as another client drops the first one's channel
  });
});
