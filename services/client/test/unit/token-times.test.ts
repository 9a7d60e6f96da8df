import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { tokenTimes } from '../../src/client.js';

describe('tokenTimes (when the client library refreshes)', () => {
  it("reads a JWT's iat and exp without verifying it", async () => {
    const token = await new SignJWT({ channels: ['room.a'] }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(1_700_000_000).setExpirationTime(1_700_000_600).sign(new Uint8Array(32));
    expect(tokenTimes(token)).toEqual({ iat: 1_700_000_000, exp: 1_700_000_600 });
    // base64url payloads whose length is not a multiple of 4, and characters - and _, decode too.
    const odd = await new SignJWT({ sub: '??>>~~', x: 'a' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(1_800_000_000).sign(new Uint8Array(32));
    expect(tokenTimes(odd)).toEqual({ exp: 1_800_000_000 });
  });

  it('gives nothing for what is not a JWT with numeric times', () => {
    for (const bad of [null, undefined, '', 'abc', 'a.!!!.c', `a.${Buffer.from('{"exp":"soon"}').toString('base64url')}.c`, `a.${Buffer.from('[1]').toString('base64url')}.c`]) {
      expect(tokenTimes(bad)).toEqual({});
    }
  });
});
