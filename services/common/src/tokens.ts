import { errors, jwtVerify } from 'jose';
import scErrors from 'sc-errors';

/** What the handshake's token turned out to be, before the worker's policy looks at it. */
export interface HandshakeAuth {
  /** What the client sent (null: no token; anything not a string is an invalid token). */
  signedAuthToken: unknown;
  authTokenError: Error | null;
  authToken: Record<string, unknown> | null;
}

/**
 * Verifies a client JWT (HS256 with the key shared with the publisher) and names a failure as
 * socketcluster-client expects: AuthTokenExpiredError, AuthTokenNotBeforeError, AuthTokenInvalidError.
 */
export async function verifyHandshakeToken(token: unknown, key: Uint8Array): Promise<HandshakeAuth> {
  const signedAuthToken = token === undefined || token === null || token === '' ? null : token;
  if (signedAuthToken === null) return { signedAuthToken, authTokenError: null, authToken: null };
  try {
    if (typeof signedAuthToken !== 'string') throw new scErrors.AuthTokenInvalidError('the token must be a string');
    const { payload } = await jwtVerify(signedAuthToken, key, { algorithms: ['HS256'] });
    return { signedAuthToken, authTokenError: null, authToken: payload as Record<string, unknown> };
  } catch (error) {
    return { signedAuthToken, authTokenError: tokenError(error), authToken: null };
  }
}

function tokenError(error: unknown): Error {
  if (error instanceof errors.JWTExpired) return new scErrors.AuthTokenExpiredError(error.message, new Date(Number(error.payload.exp) * 1000));
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'nbf') {
    return new scErrors.AuthTokenNotBeforeError(error.message, new Date(Number(error.payload.nbf) * 1000));
  }
  if (error instanceof scErrors.AuthTokenInvalidError) return error;
  return new scErrors.AuthTokenInvalidError(error instanceof Error ? error.message : String(error));
}
