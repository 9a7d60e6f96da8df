import type { AGServerSocket } from 'socketcluster-server';

/** Thrown by a hook to refuse an action; `reason` becomes the metric label, the message reaches the client. */
export class Refusal extends Error {
  constructor(
    readonly reason: string,
    message: string,
    override readonly name = 'RefusedError',
  ) {
    super(message);
  }
}

/** What socketcluster-server found of the handshake's token before our middleware runs. */
export interface HandshakeAuth {
  signedAuthToken: string | null;
  authTokenError: Error | null;
  authToken: unknown;
}

/**
 * Where features plug into the worker: client auth at the handshake, channel access on
 * subscribe, publish policy, and procedures such as `recover`. Each hook throws a Refusal to say no.
 */
export interface WorkerHooks {
  handshake?: (socket: AGServerSocket, auth: HandshakeAuth) => void | Promise<void>;
  subscribe?: (socket: AGServerSocket, channel: string) => void | Promise<void>;
  publish?: (socket: AGServerSocket, channel: string, data: unknown) => void | Promise<void>;
  procedures?: Record<string, (socket: AGServerSocket, data: unknown) => unknown>;
}
