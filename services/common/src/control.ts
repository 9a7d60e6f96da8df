/**
 * The cluster's control channel: how the publisher's server API (POST /v1/clients/:clientId/disconnect)
 * reaches every worker at once. The publisher publishes a control message on CONTROL_CHANNEL at the
 * channel's broker shard; every worker subscribes to it through its cluster link at start and acts on it.
 *
 * Who can publish there: the brokers accept only cluster members (the cluster key, SCC_AUTH_KEY), and
 * a client can neither subscribe to nor publish on it: the name starts with `#`, which CHANNEL_NAME
 * never allows (the worker refuses both before anything reaches the cluster).
 */

import { registryKeys } from './bridges.js';
import { RESERVED_CHANNELS } from './wire.js';

/** The reserved channel; CHANNEL_NAME refuses it, so no client can take it. */
export const CONTROL_CHANNEL = RESERVED_CHANNELS.control;

/** Most client ids one worker returns for a presence query (and the REST route's largest `limit`). */
export const MAX_PRESENCE_LIMIT = 1000;

/** Longest client id a control message names (the token's `sub`, as identity.ts bounds it). */
export const MAX_CONTROL_CLIENT_ID = 200;

export type ControlMessage =
  | {
      type: 'disconnect';
      clientId: string;
      /** true: close with CLOSE_CODES.disconnectedReconnect, else disconnectedNoReconnect. */
      reconnect: boolean;
    }
  /** One token revoked; `until` (ms since the epoch): when the entry may be forgotten (the token has expired). */
  | { type: 'revoke'; jti: string; until: number }
  /** Every token of the client issued at or before `before` (epoch seconds) revoked. */
  | { type: 'revoke'; clientId: string; before: number; until: number }
  /**
   * Channel info (and presence, with `clients`): every worker answers on `replyTo` (a publisher's
   * `#sb.reply.<instanceId>`) with a `QueryReply` carrying the same `id`.
   */
  | { type: 'query'; id: string; channel: string; replyTo: string; clients: boolean; limit: number };

/** A worker's answer to a query: its subscriber count of the channel and, for presence, its distinct client ids (at most `limit`). */
export interface QueryReply {
  id: string;
  instanceId: string;
  subscribers: number;
  clients?: string[];
  /** More distinct clients than `limit` are subscribed on this worker. */
  truncated?: boolean;
}

/** Longest `jti` accepted. */
export const MAX_JTI = 200;

const goodId = (value: unknown, max: number): value is string => typeof value === 'string' && value !== '' && value.length <= max;
const goodTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value) && value >= 0;

/** A control message of a known type and shape, or undefined: anything else is ignored. */
export function parseControl(data: unknown): ControlMessage | undefined {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const { type, clientId, reconnect } = data as Record<string, unknown>;
  if (type === 'disconnect') {
    if (typeof clientId !== 'string' || clientId === '' || clientId.length > MAX_CONTROL_CLIENT_ID) return undefined;
    if (typeof reconnect !== 'boolean') return undefined;
    return { type, clientId, reconnect };
  }
  if (type === 'revoke') {
    const { jti, before, until } = data as Record<string, unknown>;
    if (!goodTime(until)) return undefined;
    if (jti !== undefined) return goodId(jti, MAX_JTI) && clientId === undefined ? { type, jti, until } : undefined;
    if (goodId(clientId, MAX_CONTROL_CLIENT_ID) && goodTime(before)) return { type, clientId, before, until };
    return undefined;
  }
  if (type === 'query') {
    const { id, channel, replyTo, clients, limit } = data as Record<string, unknown>;
    if (!goodId(id, 100) || !goodId(channel, 200) || typeof clients !== 'boolean') return undefined;
    if (typeof replyTo !== 'string' || !replyTo.startsWith(RESERVED_CHANNELS.replyPrefix) || replyTo.length > 300) return undefined;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PRESENCE_LIMIT) return undefined;
    return { type, id, channel, replyTo, clients, limit };
  }
  return undefined;
}

/** A worker's reply as it arrives on the reply channel: checked, else undefined. */
export function parseQueryReply(data: unknown): QueryReply | undefined {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const { id, instanceId, subscribers, clients, truncated } = data as Record<string, unknown>;
  if (typeof id !== 'string' || typeof instanceId !== 'string' || typeof subscribers !== 'number' || !Number.isInteger(subscribers) || subscribers < 0) return undefined;
  if (clients !== undefined && (!Array.isArray(clients) || clients.length > MAX_PRESENCE_LIMIT || !clients.every((c) => typeof c === 'string'))) return undefined;
  return { id, instanceId, subscribers, ...(clients !== undefined && { clients: clients as string[] }), ...(truncated === true && { truncated: true }) };
}

/** The revocations a worker holds in memory, so a handshake's check costs no Redis round trip. */
export class Revocations {
  /** jti → until (ms). Maps: keys come from tokens. */
  private readonly tokens = new Map<string, number>();
  /** clientId → {before (s), until (ms)}. */
  private readonly clients = new Map<string, { before: number; until: number }>();

  get size(): number {
    return this.tokens.size + this.clients.size;
  }

  apply(message: Extract<ControlMessage, { type: 'revoke' }>): void {
    if ('jti' in message) this.tokens.set(message.jti, Math.max(message.until, this.tokens.get(message.jti) ?? 0));
    else {
      const known = this.clients.get(message.clientId);
      this.clients.set(message.clientId, { before: Math.max(message.before, known?.before ?? 0), until: Math.max(message.until, known?.until ?? 0) });
    }
  }

  /** Whether verified claims belong to a revoked token: its `jti`, or its client's cut-off at or after its `iat`. */
  isRevoked(claims: Record<string, unknown> | null | undefined, now = Date.now()): boolean {
    if (!claims) return false;
    const { jti, sub, iat } = claims;
    if (typeof jti === 'string') {
      const until = this.tokens.get(jti);
      if (until !== undefined && until > now) return true;
    }
    if (typeof sub === 'string') {
      const cut = this.clients.get(sub);
      // No iat: when it was issued is unknown, so it counts as before the cut-off.
      if (cut && cut.until > now && (typeof iat !== 'number' || iat <= cut.before)) return true;
    }
    return false;
  }

  /** Drops entries whose tokens have all expired. */
  prune(now = Date.now()): void {
    for (const [jti, until] of this.tokens) if (until <= now) this.tokens.delete(jti);
    for (const [id, cut] of this.clients) if (cut.until <= now) this.clients.delete(id);
  }

  /** Loads what Redis holds (at a worker's start): the index, then each client's cut-off. */
  async load(redis: RevocationStore, now = Date.now()): Promise<void> {
    const members = await redis.zrangebyscore(registryKeys.revocations, now, '+inf', 'WITHSCORES');
    const clients: Array<[string, number]> = [];
    for (let i = 0; i + 1 < members.length; i += 2) {
      const member = members[i]!;
      const until = Number(members[i + 1]);
      if (member.startsWith('jti:')) this.apply({ type: 'revoke', jti: member.slice(4), until });
      else if (member.startsWith('client:')) clients.push([member.slice(7), until]);
    }
    if (clients.length === 0) return;
    const befores = await redis.mget(...clients.map(([id]) => registryKeys.revokedClient(id)));
    clients.forEach(([clientId, until], i) => {
      const before = Number(befores[i]);
      if (befores[i] != null && Number.isFinite(before)) this.apply({ type: 'revoke', clientId, before, until });
    });
  }
}

/** The Redis commands loading revocations takes (ioredis, single node or cluster: one hash tag). */
export interface RevocationStore {
  zrangebyscore(key: string, min: number, max: string, withScores: 'WITHSCORES'): Promise<string[]>;
  mget(...keys: string[]): Promise<Array<string | null>>;
}
