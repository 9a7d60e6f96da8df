import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { TokenClaims } from '@socketbridge/common';

/** A JWT socketcluster-server verifies natively: HS256 with the shared key, our claims inside. */
export class TokenIssuer {
  private readonly key: Uint8Array;

  constructor(
    authKey: string,
    private readonly ttlSeconds: number,
  ) {
    this.key = new TextEncoder().encode(authKey);
  }

  async issue(claims: TokenClaims): Promise<string> {
    return new SignJWT({ channels: claims.channels })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(claims.sub)
      .setIssuedAt()
      // Names this token, for the server API's revoke (POST /v1/tokens/revoke {jti}).
      .setJti(randomUUID())
      .setExpirationTime(`${this.ttlSeconds}s`)
      .sign(this.key);
  }
}
