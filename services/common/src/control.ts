/**
 * The cluster's control channel: how the publisher's server API (POST /v1/clients/:clientId/disconnect)
 * reaches every worker at once. The publisher publishes a control message on CONTROL_CHANNEL at the
 * channel's broker shard; every worker subscribes to it through its cluster link at start and acts on it.
 *
 * Who can publish there: the brokers accept only cluster members (the cluster key, SCC_AUTH_KEY), and
 * a client can neither subscribe to nor publish on it: the name starts with `#`, which CHANNEL_NAME
 * never allows (the worker refuses both before anything reaches the cluster).
 */

/** The reserved channel; CHANNEL_NAME refuses it, so no client can take it. */
export const CONTROL_CHANNEL = '#sb.control';

/** Longest client id a control message names (the token's `sub`, as identity.ts bounds it). */
export const MAX_CONTROL_CLIENT_ID = 200;

export type ControlMessage = {
  type: 'disconnect';
  clientId: string;
  /** true: close with CLOSE_CODES.disconnectedReconnect, else disconnectedNoReconnect. */
  reconnect: boolean;
};

/** A control message of a known type and shape, or undefined: anything else is ignored. */
export function parseControl(data: unknown): ControlMessage | undefined {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const { type, clientId, reconnect } = data as Record<string, unknown>;
  if (type === 'disconnect') {
    if (typeof clientId !== 'string' || clientId === '' || clientId.length > MAX_CONTROL_CLIENT_ID) return undefined;
    if (typeof reconnect !== 'boolean') return undefined;
    return { type, clientId, reconnect };
  }
  return undefined;
}
