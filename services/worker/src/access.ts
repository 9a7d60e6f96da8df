import { decideSubscribe, type ChannelPolicy, type ClientSocket, type TokenClaims } from '@socketbridge/common';
import { Refusal, type HandshakeAuth, type WorkerHooks } from './hooks.js';

/** The claims the socket server verified, if they are of our shape. */
export function claimsOf(token: unknown): TokenClaims | undefined {
  if (!token || typeof token !== 'object') return undefined;
  const { sub, channels } = token as Partial<TokenClaims>;
  if (typeof sub !== 'string' || !Array.isArray(channels) || !channels.every((c) => typeof c === 'string')) return undefined;
  return { sub, channels };
}

/**
 * Who may connect and what they may subscribe to. The socket server has already verified the
 * JWT's signature and expiry with the shared key; this turns its verdict into refusals.
 */
export function accessHooks(options: { requireAuth: boolean; policies: () => ChannelPolicy[] }): WorkerHooks {
  return {
    handshake(_socket: ClientSocket, auth: HandshakeAuth) {
      if (auth.signedAuthToken == null) {
        if (options.requireAuth) throw new Refusal('no_token', 'this worker requires a token: sign in first', 'AuthRequiredError');
        return;
      }
      if (auth.authTokenError) {
        const expired = auth.authTokenError.name === 'AuthTokenExpiredError';
        throw new Refusal(
          expired ? 'expired_token' : 'bad_token',
          expired ? 'the token has expired: sign in again' : 'the token is not valid',
          expired ? 'AuthTokenExpiredError' : 'AuthTokenInvalidError',
        );
      }
      if (!claimsOf(auth.authToken)) throw new Refusal('bad_claims', 'the token does not carry SocketBridge claims', 'AuthTokenInvalidError');
    },
    subscribe(socket: ClientSocket, channel: string) {
      const decision = decideSubscribe(options.policies(), channel, claimsOf(socket.authToken));
      if (!decision.allowed) throw new Refusal(decision.reason, decision.message, 'SubscribeRefusedError');
    },
  };
}
