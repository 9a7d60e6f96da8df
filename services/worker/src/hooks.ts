import type { ClientSocket, HandshakeAuth, RefusalReason, SocketErrorName } from '@socketbridge/common';

export type { HandshakeAuth } from '@socketbridge/common';

/**
 * Thrown by a hook to refuse an action; `reason` becomes the metric label, the message reaches the
 * client. Reasons and names come from the wire contract's catalogue (REFUSAL_REASONS, SOCKET_ERRORS).
 */
export class Refusal extends Error {
  constructor(
    readonly reason: RefusalReason,
    message: string,
    override readonly name: SocketErrorName = 'RefusedError',
  ) {
    super(message);
  }
}

/**
 * Where features plug into the worker: client auth at the handshake, channel access on
 * subscribe, publish policy, and procedures such as `recover`. Each hook throws a Refusal to say no.
 */
export interface WorkerHooks {
  handshake?: (socket: ClientSocket, auth: HandshakeAuth) => void | Promise<void>;
  subscribe?: (socket: ClientSocket, channel: string) => void | Promise<void>;
  publish?: (socket: ClientSocket, channel: string, data: unknown) => void | Promise<void>;
  /** A new token on an open socket (`#authenticate`, a refresh), already verified: throw to refuse it. */
  authenticate?: (socket: ClientSocket, auth: HandshakeAuth) => void | Promise<void>;
  /** After the socket's auth changed (refresh, expiry, sign-out): false drops it from the channel. */
  holds?: (socket: ClientSocket, channel: string) => boolean;
  procedures?: Record<string, (socket: ClientSocket, data: unknown) => unknown>;
  /** Whether the channel's policy asks for presence (its client ids can be listed, its subscribers hear joins and leaves). */
  presence?: (channel: string) => boolean;
}
