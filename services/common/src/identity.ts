import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwksCache,
  jwtVerify,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWKSCacheInput,
  type JWSHeaderParameters,
  type JWTPayload,
} from 'jose';
import scErrors from 'sc-errors';
import { z } from 'zod';
import { KeysUnavailableError, tokenError, type HandshakeAuth } from './tokens.js';

/**
 * Client tokens from an identity provider: RS256, ES256 or EdDSA JWTs verified against the keys an
 * issuer publishes at its JWKS URL. Each configured issuer has its own key set, picked by the
 * token's `iss` only once that issuer is known, and verified with that issuer and its audience, so
 * a token signed with one issuer's key can never pass as another's. HS256 tokens (the publisher's
 * sign-up, signed with SOCKETBRIDGE_AUTH_KEY) are verified as before.
 */

export const IDP_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export type IdpAlgorithm = (typeof IDP_ALGORITHMS)[number];

/** Most channels one token may grant: a bigger list is refused, not truncated. */
export const MAX_TOKEN_CHANNELS = 1000;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export const issuerSchema = z
  .object({
    /** The `iss` the tokens carry, exactly (for Keycloak `https://<host>/realms/<realm>`). */
    issuer: z.string().min(1),
    /** Where the issuer publishes its keys. https, or http to a loopback address or with `allowHttp`. */
    jwksUri: z.string().url(),
    /** The `aud` a token must carry (one of them, if a list). */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    algorithms: z.array(z.enum(IDP_ALGORITHMS)).min(1).default([...IDP_ALGORITHMS]),
    /** The claim naming the client (its `client.<id>` channel is its own). */
    clientIdClaim: z.string().min(1).default('sub'),
    /** The claim listing the channels granted: an array of names, or a space-separated string (as `scope`). */
    channelsClaim: z.string().min(1).default('channels'),
    /** When set, only entries starting with it grant a channel, the prefix removed (`scope` = "openid ch:prices"). */
    channelPrefix: z.string().min(1).optional(),
    /** Accept an http:// JWKS URL that is not loopback (an in-cluster IdP Service). */
    allowHttp: z.boolean().default(false),
  })
  .strict()
  .superRefine((value, ctx) => {
    const url = new URL(value.jwksUri);
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && (value.allowHttp || LOOPBACK.has(url.hostname))) return;
    ctx.addIssue({ code: 'custom', path: ['jwksUri'], message: 'must be https:// (http:// only to a loopback address, or with "allowHttp": true)' });
  });

export type IssuerConfig = z.infer<typeof issuerSchema>;

export const issuersSchema = z.array(issuerSchema).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((entry, i) => {
    if (seen.has(entry.issuer)) ctx.addIssue({ code: 'custom', path: [i, 'issuer'], message: `${entry.issuer} is listed twice` });
    seen.add(entry.issuer);
  });
});

/** Parses SOCKETBRIDGE_JWT_ISSUERS: a JSON array of issuers (unset or empty: none). */
export const issuersEnv = () =>
  z.preprocess(
    (v) => (v === '' || v === undefined ? '[]' : v),
    z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `must be a JSON array of issuers (${(error as Error).message})` });
          return z.NEVER;
        }
      })
      .pipe(issuersSchema),
  );

export interface JwksOptions {
  /** After a fetch, no new fetch for an unknown `kid` for this long (jose's cooldownDuration); also after a failed fetch. */
  cooldownMs: number;
  /** Keys are refetched on the next token once older than this (jose's cacheMaxAge). */
  cacheMaxAgeMs: number;
  /** While the endpoint cannot be reached, keys fetched up to this long ago are still used. */
  maxStaleMs: number;
  /** A JWKS request that takes longer has failed. */
  timeoutMs: number;
}

type KeyGetter = (header: JWSHeaderParameters, token: FlattenedJWSInput) => ReturnType<ReturnType<typeof createLocalJWKSet>>;

/** A failure to get the key set (network, timeout, not 200, not a key set), as opposed to a key-set answer. */
function isFetchFailure(error: unknown): boolean {
  return (
    error instanceof errors.JWKSTimeout ||
    error instanceof errors.JWKSInvalid ||
    error instanceof TypeError ||
    (error instanceof errors.JOSEError && error.code === 'ERR_JOSE_GENERIC')
  );
}

/**
 * One issuer's keys: jose's remote key set (refetch on an unknown `kid` at most once per cooldown,
 * refetch once older than cacheMaxAge), plus the last key set fetched, which jose does not fall back
 * to when a refetch fails: served while its age is within the stale bound. A failed fetch also starts
 * a cooldown, so an unreachable endpoint is not asked again for every token.
 */
export class IssuerKeys {
  /** jose writes the last good key set and its time here (its `jwksCache` option). */
  readonly cache: { uat?: number; jwks?: JSONWebKeySet } = {};
  private readonly remote: ReturnType<typeof createRemoteJWKSet>;
  private failedAt = -Infinity;
  private local: { uat: number; get: KeyGetter } | undefined;
  /** Fetches of the key set that failed (for logs and tests). */
  failures = 0;

  constructor(
    readonly jwksUri: string,
    private readonly options: JwksOptions,
  ) {
    this.remote = createRemoteJWKSet(new URL(jwksUri), {
      cooldownDuration: options.cooldownMs,
      cacheMaxAge: options.cacheMaxAgeMs,
      timeoutDuration: options.timeoutMs,
      [jwksCache]: this.cache as JWKSCacheInput,
    });
  }

  readonly getKey: KeyGetter = async (header, token) => {
    if (Date.now() - this.failedAt < this.options.cooldownMs) return this.cached(header, token);
    try {
      return await this.remote(header, token);
    } catch (error) {
      if (!isFetchFailure(error)) throw error;
      this.failedAt = Date.now();
      this.failures++;
      return this.cached(header, token, error);
    }
  };

  /** The last key set fetched, if its age is within the bound (never less than cacheMaxAge). */
  private cached(header: JWSHeaderParameters, token: FlattenedJWSInput, cause?: unknown): ReturnType<KeyGetter> {
    const { uat, jwks } = this.cache;
    const bound = Math.max(this.options.maxStaleMs, this.options.cacheMaxAgeMs);
    if (uat === undefined || jwks === undefined || Date.now() - uat > bound) {
      const why = cause instanceof Error ? `: ${cause.message}` : '';
      throw new KeysUnavailableError(`the issuer's keys could not be fetched from ${this.jwksUri}${why}`);
    }
    if (this.local?.uat !== uat) this.local = { uat, get: createLocalJWKSet(jwks) };
    return this.local.get(header, token);
  }
}

interface Issuer {
  config: IssuerConfig;
  keys: IssuerKeys;
}

/** Turns an IdP token's claims into SocketBridge's `{sub, channels}`, by the issuer's claim mapping. */
export function mapClaims(config: Pick<IssuerConfig, 'clientIdClaim' | 'channelsClaim' | 'channelPrefix'>, payload: JWTPayload): Record<string, unknown> {
  const has = (claim: string) => Object.hasOwn(payload, claim);
  const clientId = has(config.clientIdClaim) ? payload[config.clientIdClaim] : undefined;
  if (typeof clientId !== 'string' || clientId === '' || clientId.length > 200) {
    throw new scErrors.AuthTokenInvalidError(`the token's "${config.clientIdClaim}" claim must name the client (a string of 1-200 characters)`);
  }
  const raw = has(config.channelsClaim) ? payload[config.channelsClaim] : undefined;
  let entries: string[];
  if (raw === undefined) entries = [];
  else if (typeof raw === 'string') entries = raw.split(' ').filter(Boolean);
  else if (Array.isArray(raw) && raw.every((c) => typeof c === 'string')) entries = raw as string[];
  else throw new scErrors.AuthTokenInvalidError(`the token's "${config.channelsClaim}" claim must be an array of channel names or a space-separated string`);
  const prefix = config.channelPrefix;
  const channels = prefix ? entries.filter((e) => e.startsWith(prefix) && e.length > prefix.length).map((e) => e.slice(prefix.length)) : entries;
  if (channels.length > MAX_TOKEN_CHANNELS) {
    throw new scErrors.AuthTokenInvalidError(`the token grants ${channels.length} channels: at most ${MAX_TOKEN_CHANNELS}`);
  }
  return { ...payload, sub: clientId, channels: [...new Set(channels)] };
}

/**
 * Verifies every client token a worker accepts: HS256 with the shared key (the built-in sign-up),
 * or an IdP's asymmetric JWT against its issuer's keys. Never throws: the verdict is a HandshakeAuth.
 */
export class TokenVerifier {
  /** Keyed by the `iss` clients send: a Map, so `__proto__` or `constructor` finds nothing. */
  private readonly issuers = new Map<string, Issuer>();

  constructor(
    private readonly sharedKey: Uint8Array,
    issuers: readonly IssuerConfig[] = [],
    options: JwksOptions = { cooldownMs: 30_000, cacheMaxAgeMs: 600_000, maxStaleMs: 3_600_000, timeoutMs: 5000 },
  ) {
    for (const config of issuers) this.issuers.set(config.issuer, { config, keys: new IssuerKeys(config.jwksUri, options) });
  }

  /** The issuer's key set (for diagnostics and tests). */
  keysOf(issuer: string): IssuerKeys | undefined {
    return this.issuers.get(issuer)?.keys;
  }

  readonly verify = async (token: unknown): Promise<HandshakeAuth> => {
    const signedAuthToken = token === undefined || token === null || token === '' ? null : token;
    if (signedAuthToken === null) return { signedAuthToken, authTokenError: null, authToken: null };
    try {
      if (typeof signedAuthToken !== 'string') throw new scErrors.AuthTokenInvalidError('the token must be a string');
      return { signedAuthToken, authTokenError: null, authToken: await this.claims(signedAuthToken) };
    } catch (error) {
      return { signedAuthToken, authTokenError: tokenError(error), authToken: null };
    }
  };

  private async claims(token: string): Promise<Record<string, unknown>> {
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch {
      throw new scErrors.AuthTokenInvalidError('the token is not a JWT');
    }
    if (alg === 'HS256') {
      try {
        const { payload } = await jwtVerify(token, this.sharedKey, { algorithms: ['HS256'] });
        return payload as Record<string, unknown>;
      } catch (error) {
        // Not "the issuer's key": an HS256 token is the sign-up's, whatever its iss says.
        if (error instanceof errors.JWSSignatureVerificationFailed) throw new scErrors.AuthTokenInvalidError('the signature does not verify');
        throw error;
      }
    }
    if (typeof alg !== 'string' || !(IDP_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new scErrors.AuthTokenInvalidError(`tokens signed with ${String(alg).slice(0, 20)} are not accepted: HS256 (sign-up) or ${IDP_ALGORITHMS.join(', ')} (identity providers)`);
    }
    const issuer = typeof iss === 'string' ? this.issuers.get(iss) : undefined;
    if (!issuer) {
      throw new scErrors.AuthTokenInvalidError(
        typeof iss === 'string' ? `the issuer ${JSON.stringify(iss.slice(0, 200))} is not one this worker trusts` : `a ${alg} token must name its issuer (iss)`,
      );
    }
    const { config, keys } = issuer;
    const { payload } = await jwtVerify(token, keys.getKey, {
      issuer: config.issuer,
      audience: config.audience,
      algorithms: config.algorithms,
      requiredClaims: ['exp'],
    });
    return mapClaims(config, payload);
  }
}
