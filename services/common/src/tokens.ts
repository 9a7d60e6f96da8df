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

/** The issuer's keys could not be fetched and none recent enough are cached (an IdP token). */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}

/** Names a verification failure as socketcluster-client expects, with a reason a person can act on. */
export function tokenError(error: unknown): Error {
  if (error instanceof errors.JWTExpired) return new scErrors.AuthTokenExpiredError(error.message, new Date(Number(error.payload.exp) * 1000));
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'nbf') {
    return new scErrors.AuthTokenNotBeforeError(error.message, new Date(Number(error.payload.nbf) * 1000));
  }
  if (error instanceof scErrors.AuthTokenInvalidError) return error;
  return new scErrors.AuthTokenInvalidError(describe(error));
}

function describe(error: unknown): string {
  if (error instanceof KeysUnavailableError) return error.message;
  if (error instanceof errors.JWKSNoMatchingKey) return "no key of the token's issuer has its kid (an unknown or rotated-out key)";
  if (error instanceof errors.JWKSMultipleMatchingKeys) return "several of the issuer's keys match the token's kid";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the signature does not verify with the issuer's key";
  if (error instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not allowed for its issuer";
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'the token is for another audience';
    if (error.claim === 'iss') return 'the token is from another issuer';
    return `the token's "${error.claim}" claim is not acceptable (${error.reason})`;
  }
  return error instanceof Error ? error.message : String(error);
}
