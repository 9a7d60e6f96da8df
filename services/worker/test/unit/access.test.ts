import { Redis } from 'ioredis';
import scErrors from 'sc-errors';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICIES, type ClientSocket, type HandshakeAuth } from '@socketbridge/common';
import { accessHooks, claimsOf } from '../../src/access.js';
import { Refusal } from '../../src/hooks.js';
import { recoverProcedure } from '../../src/recover.js';

// The hooks read only a socket's verified token: a plain object with one is the socket they see.
const socketWith = (authToken: Record<string, unknown> | null) => ({ authToken }) as ClientSocket;
const ada = { sub: 'ada', channels: ['client.ada'] };
const auth = (over: Partial<HandshakeAuth>): HandshakeAuth => ({ signedAuthToken: 'a.b.c', authTokenError: null, authToken: ada, ...over });

/** What a hook threw, as the worker counts and answers it: reason and name. */
async function refusal(run: () => unknown): Promise<{ reason: string; name: string }> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(Refusal);
    const { reason, name } = error as Refusal;
    return { reason, name };
  }
  throw new Error('expected a refusal');
}

describe('claimsOf', () => {
  it('takes only tokens of our shape', () => {
    expect(claimsOf({ sub: 'a', channels: ['x'], iat: 1 })).toEqual({ sub: 'a', channels: ['x'] });
    for (const bad of [null, 'a', { sub: 1, channels: [] }, { sub: 'a' }, { sub: 'a', channels: [1] }]) expect(claimsOf(bad)).toBeUndefined();
  });
});

describe('accessHooks', () => {
  const open = accessHooks({ requireAuth: false, policies: () => DEFAULT_POLICIES });
  const closed = accessHooks({ requireAuth: true, policies: () => DEFAULT_POLICIES });

  it('lets a socket without a token in unless the worker requires one', async () => {
    const none = auth({ signedAuthToken: null, authToken: null });
    await expect(Promise.resolve(open.handshake!(socketWith(null), none))).resolves.toBeUndefined();
    expect(await refusal(() => closed.handshake!(socketWith(null), none))).toEqual({ reason: 'no_token', name: 'AuthRequiredError' });
  });

  it('refuses expired, invalid and foreign tokens by the names socketcluster-client knows', async () => {
    const expired = auth({ authToken: null, authTokenError: new scErrors.AuthTokenExpiredError('expired', new Date()) });
    expect(await refusal(() => open.handshake!(socketWith(null), expired))).toEqual({ reason: 'expired_token', name: 'AuthTokenExpiredError' });
    const invalid = auth({ authToken: null, authTokenError: new scErrors.AuthTokenInvalidError('bad signature') });
    expect(await refusal(() => open.handshake!(socketWith(null), invalid))).toEqual({ reason: 'bad_token', name: 'AuthTokenInvalidError' });
    const foreign = auth({ authToken: { sub: 'x' } });
    expect(await refusal(() => open.handshake!(socketWith(null), foreign))).toEqual({ reason: 'bad_claims', name: 'AuthTokenInvalidError' });
  });

  it('lets a client onto its own channel only, by the channel policy', async () => {
    await expect(Promise.resolve(open.subscribe!(socketWith(ada), 'client.ada'))).resolves.toBeUndefined();
    expect(await refusal(() => open.subscribe!(socketWith(ada), 'client.bob'))).toEqual({ reason: 'not_owner', name: 'SubscribeRefusedError' });
    expect(await refusal(() => open.subscribe!(socketWith(null), 'broadcast'))).toEqual({ reason: 'unauthenticated', name: 'SubscribeRefusedError' });
  });
});

describe('recoverProcedure refusals', () => {
  // Never connected: a refusal must come before any Redis call, so these never reach it.
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
  const recover = recoverProcedure(redis, () => DEFAULT_POLICIES);

  it('refuses a malformed request by name, before touching history', async () => {
    for (const bad of [undefined, {}, { channel: 'client.ada' }, { channel: 'client.ada', since: 'yesterday' }, { channel: 'client.ada', since: '0-0', limit: 501 }]) {
      expect(await refusal(() => recover(socketWith(ada), bad))).toEqual({ reason: 'bad_request', name: 'BadRecoverRequestError' });
    }
  });

  it("refuses another client's channel as a subscribe would", async () => {
    expect(await refusal(() => recover(socketWith(ada), { channel: 'client.bob', since: '0-0' }))).toEqual({ reason: 'not_owner', name: 'RecoverRefusedError' });
    expect(redis.status).toBe('wait');
  });
});
