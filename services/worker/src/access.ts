import { decideSubscribe, type ChannelPolicy, type ClientSocket, type TokenClaims } from '@socketbridge/common';
import { Refusal, type HandshakeAuth, type WorkerHooks } from './hooks.js';

/** The claims the socket server verified, if they are of our shape. */
export function claimsOf(token: unknown): TokenClaims | undefined {
  if (!token || typeof token !== 'object') return undefined;
  const { sub, channels } = token as Partial<TokenClaims>;
  if (typeof sub !== 'string' || !Array.isArray(channels) || !channels.every((c) => typeof c === 'string')) return undefined;
  return { sub, channels };
}

/** Turns the socket server's verdict on a token into a refusal (a bad or expired token, or one without our claims). */
function checkToken(auth: HandshakeAuth): void {
  if (auth.authTokenError) {
    const expired = auth.authTokenError.name === 'AuthTokenExpiredError';
    throw new Refusal(
      expired ? 'expired_token' : 'bad_token',
      expired ? 'the token has expired: sign in again' : `the token is not valid: ${auth.authTokenError.message}`,
      expired ? 'AuthTokenExpiredError' : 'AuthTokenInvalidError',
    );
  }
  if (!claimsOf(auth.authToken)) throw new Refusal('bad_claims', 'the token does not carry SocketBridge claims', 'AuthTokenInvalidError');
}

/**
 * Who may connect and what they may subscribe to. The socket server has already verified the
 * JWT's signature and expiry (the shared key, or the issuer's keys); this turns its verdict into refusals.
 */
export function accessHooks(options: { requireAuth: boolean; policies: () => ChannelPolicy[] }): WorkerHooks {
  return {
    handshake(_socket: ClientSocket, auth: HandshakeAuth) {
      if (auth.signedAuthToken == null) {
        if (options.requireAuth) throw new Refusal('no_token', 'this worker requires a token: sign in first', 'AuthRequiredError');
        return;
      }
      checkToken(auth);
    },
    /** A refreshed token on an open socket: the same checks as at the handshake. */
    authenticate(_socket: ClientSocket, auth: HandshakeAuth) {
      checkToken(auth);
    },
    subscribe(socket: ClientSocket, channel: string) {
      const decision = decideSubscribe(options.policies(), channel, claimsOf(socket.authToken));
      if (!decision.allowed) throw new Refusal(decision.reason, decision.message, 'SubscribeRefusedError');
    },
    /** After a refresh, an expiry or a sign-out: may the socket stay on the channel? */
    holds(socket: ClientSocket, channel: string) {
      return decideSubscribe(options.policies(), channel, claimsOf(socket.authToken)).allowed;
    },
  };
}
