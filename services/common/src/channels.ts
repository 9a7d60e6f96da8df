/**
 * Channels, their access policies and the token claims that grant them: the contract between the
 * publisher (which issues tokens and writes policies), the workers (which enforce them) and the operator.
 */
import type { SubscribeRefusalReason } from './wire.js';

// The envelope and offsets are the wire contract's (wire.ts); re-exported where clients always found them.
export { OFFSET, type Envelope } from './wire.js';

/**
 * Names Object.prototype already holds (`constructor`, `__proto__`, `toString`…). Upstream
 * scc-broker-client and ag-simple-broker keep channels in plain objects, where such a name finds
 * the prototype's member instead of a channel (and `__proto__` writes into Object.prototype), so
 * no channel may be called that.
 */
export const RESERVED_CHANNEL_NAMES: readonly string[] = Object.getOwnPropertyNames(Object.prototype);

/** The longest channel name (characters). */
export const MAX_CHANNEL_NAME_LENGTH = 200;

/** Channel names: what RabbitMQ routing keys and SocketCluster channel names both carry safely. */
export const CHANNEL_NAME = new RegExp(`^(?!(?:${RESERVED_CHANNEL_NAMES.join('|')})$)[A-Za-z0-9_.:@-]{1,${MAX_CHANNEL_NAME_LENGTH}}$`);

export type Access = 'public' | 'authenticated' | 'owner';

export interface HistoryPolicy {
  /** Entries kept per channel (Redis Streams MAXLEN, approximate). */
  size: number;
  /** Entries older than this are trimmed. */
  ttlSeconds: number;
}

export interface ChannelPolicy {
  /**
   * Dot-separated segments: a literal, `*` (any one segment), `{name}` (any one segment, captured;
   * `{clientId}` ties an `owner` channel to the token's client), or a final `#` (any rest, even none).
   */
  pattern: string;
  access: Access;
  history?: HistoryPolicy;
  /** Who is subscribed can be asked (GET /v1/channels/:channel/presence), and subscribers hear joins and leaves. */
  presence?: boolean;
}

/** What a client's JWT carries besides `iat`/`exp`: its id and channels granted by name. */
export interface TokenClaims {
  sub: string;
  channels: string[];
}

export const DEFAULT_HISTORY: HistoryPolicy = { size: 1000, ttlSeconds: 3600 };

/** Every client owns `client.<clientId>`; `broadcast` reaches every signed-in client. */
export const DEFAULT_POLICIES: ChannelPolicy[] = [
  { pattern: 'client.{clientId}', access: 'owner' },
  { pattern: 'broadcast', access: 'authenticated' },
];

export function clientChannel(clientId: string): string {
  return `client.${clientId}`;
}

/** Matches one pattern; returns the captured `{name}` segments, or undefined. */
export function matchPattern(pattern: string, channel: string): Record<string, string> | undefined {
  const want = pattern.split('.');
  const have = channel.split('.');
  // No prototype: a policy's `params.clientId` must be a captured segment, never an inherited member.
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < want.length; i++) {
    const segment = want[i]!;
    if (segment === '#' && i === want.length - 1) return params;
    const actual = have[i];
    if (actual === undefined || actual === '') return undefined;
    if (segment === '*') continue;
    const capture = /^\{([A-Za-z][A-Za-z0-9_]*)\}$/.exec(segment);
    if (capture) params[capture[1]!] = actual;
    else if (segment !== actual) return undefined;
  }
  return have.length === want.length ? params : undefined;
}

/** The most specific policy for a channel: the first match in order (callers list specific ones first). */
export function findPolicy(policies: readonly ChannelPolicy[], channel: string) {
  for (const policy of policies) {
    const params = matchPattern(policy.pattern, channel);
    if (params) return { policy, params };
  }
  return undefined;
}

export type AccessDecision = { allowed: true } | { allowed: false; reason: SubscribeRefusalReason; message: string };

/** May a socket with these claims (undefined: not signed in) subscribe to `channel`? */
export function decideSubscribe(policies: readonly ChannelPolicy[], channel: string, claims: TokenClaims | undefined): AccessDecision {
  if (!CHANNEL_NAME.test(channel)) {
    return { allowed: false, reason: 'bad_channel', message: `channel names are 1-200 of A-Z a-z 0-9 _ . : @ -, and not an Object.prototype name` };
  }
  if (claims?.channels.includes(channel)) return { allowed: true };
  const found = findPolicy(policies, channel);
  if (!found) return { allowed: false, reason: 'no_policy', message: `no channel policy covers ${channel}` };
  const { policy, params } = found;
  if (policy.access === 'public') return { allowed: true };
  if (!claims) return { allowed: false, reason: 'unauthenticated', message: `${channel} needs a signed-in client` };
  if (policy.access === 'authenticated') return { allowed: true };
  if (params.clientId !== undefined && params.clientId === claims.sub) return { allowed: true };
  return { allowed: false, reason: 'not_owner', message: `${channel} belongs to another client` };
}

/** Renders a route template such as `prices.{routingKey}` or `orders.{headers.region}.{body.id}`. */
export function renderTemplate(
  template: string,
  fields: { routingKey: string; headers: Record<string, unknown>; body: unknown },
): { ok: true; value: string } | { ok: false; missing: string } {
  let missing: string | undefined;
  const value = template.replace(/\{([A-Za-z0-9_.-]+)\}/g, (_match, path: string) => {
    const resolved = resolvePath(fields, path);
    if (typeof resolved === 'string' || typeof resolved === 'number' || typeof resolved === 'boolean') return String(resolved);
    missing ??= path;
    return '';
  });
  return missing === undefined ? { ok: true, value } : { ok: false, missing };
}

function resolvePath(fields: { routingKey: string; headers: Record<string, unknown>; body: unknown }, path: string): unknown {
  if (path === 'routingKey') return fields.routingKey;
  const [root, ...rest] = path.split('.');
  let current: unknown = root === 'headers' ? fields.headers : root === 'body' ? fields.body : undefined;
  for (const key of rest) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return rest.length ? current : undefined;
}

/** The fields a route template may name. */
export const TEMPLATE_ROOTS = ['routingKey', 'headers', 'body'] as const;

/** Orders two stream offsets (`<ms>-<seq>`): negative, zero or positive. */
export function compareOffsets(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return am.length !== bm.length ? am.length - bm.length : am !== bm ? (am < bm ? -1 : 1) : Number(as) - Number(bs);
}

