/** What `POST /v1/tokens` answers for a returning client. */
export interface ClientToken {
  clientId: string;
  channel: string;
  token: string;
}

/** The login could not produce a token; the message is meant for the user as it is. */
export class LoginError extends Error {}

/**
 * Signs in with email and password, as an app would before it opens its socket. The publisher may
 * sit behind a path prefix, so the route is resolved against the given URL rather than its origin.
 */
export async function login(publisher: URL, email: string, password: string): Promise<ClientToken> {
  const base = publisher.href.endsWith('/') ? publisher.href : `${publisher.href}/`;
  const url = new URL('v1/tokens', base);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
      signal: AbortSignal.timeout(15000),
    });
  } catch (error) {
    const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
    throw new LoginError(`could not reach the publisher at ${url.origin}: ${cause}`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
    const detail = typeof message === 'string' ? message : text.slice(0, 200) || response.statusText;
    throw new LoginError(`login refused (${response.status}${typeof error === 'string' ? ` ${error}` : ''}): ${detail}`);
  }
  const { clientId, channel, token } = (body ?? {}) as Partial<ClientToken>;
  if (typeof clientId !== 'string' || typeof channel !== 'string' || typeof token !== 'string') {
    throw new LoginError(`the publisher's answer from ${url.href} has no clientId, channel and token`);
  }
  return { clientId, channel, token };
}

/**
 * The `sub` claim of a JWT, read without verifying it: the worker verifies the token, this only
 * names the client's own channel for a token given on the command line.
 */
export function tokenSubject(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    const sub = (payload as { sub?: unknown } | null)?.sub;
    return typeof sub === 'string' && sub !== '' ? sub : undefined;
  } catch {
    return undefined;
  }
}
