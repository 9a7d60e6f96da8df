import createError, { type FastifyErrorConstructor } from '@fastify/error';
import type { FastifyReply } from 'fastify';

/**
 * Every error the REST API answers with, in one place (docs/api.md lists them). Each has a stable
 * `code` for logs and docs, its HTTP status, and the `error` name the body carries: the body stays
 * `{error, message}`, the names clients have always matched on. Routes throw `new ApiErrors.X(message)`;
 * the publisher's error handler answers any of them the same way, and hooks that answer
 * directly (the admin guard, the not-found handler) use `sendApiError`.
 */
const catalogue = {
  BadRequest: { code: 'SB_BAD_REQUEST', status: 400, error: 'BadRequest', when: 'the body, query or path fails its schema' },
  InvalidBridge: { code: 'SB_INVALID_BRIDGE', status: 400, error: 'BadRequest', when: 'a bridge passes the schema but not bridgeProblems (reasons joined by "; ")' },
  InvalidChannel: { code: 'SB_INVALID_CHANNEL', status: 400, error: 'BadRequest', when: 'a publish names no valid channel' },
  AdminKeyRequired: { code: 'SB_ADMIN_KEY_REQUIRED', status: 401, error: 'Unauthorized', when: 'an admin route without a valid x-api-key' },
  OpsKeyRequired: { code: 'SB_OPS_KEY_REQUIRED', status: 401, error: 'Unauthorized', when: '/metrics or /cluster without Authorization: Bearer <ops key>' },
  WrongCredentials: { code: 'SB_WRONG_CREDENTIALS', status: 401, error: 'Unauthorized', when: 'POST /v1/tokens with a wrong email or password' },
  NoRoute: { code: 'SB_NO_ROUTE', status: 404, error: 'NotFound', when: 'no route for the method and path' },
  ClientNotFound: { code: 'SB_CLIENT_NOT_FOUND', status: 404, error: 'NotFound', when: 'no client with that id' },
  BridgeNotFound: { code: 'SB_BRIDGE_NOT_FOUND', status: 404, error: 'NotFound', when: 'no bridge of that name' },
  ConsoleNotBuilt: { code: 'SB_CONSOLE_NOT_BUILT', status: 404, error: 'NotFound', when: 'the web console is not built (npm run build)' },
  PresenceOff: { code: 'SB_PRESENCE_OFF', status: 404, error: 'NotFound', when: "presence of a channel whose policy does not set presence: true" },
  DuplicateEmail: { code: 'SB_DUPLICATE_EMAIL', status: 409, error: 'Conflict', when: 'a client with that email exists' },
  BridgeOwned: { code: 'SB_BRIDGE_OWNED', status: 409, error: 'Conflict', when: 'PUT or DELETE of a bridge a SocketBridge resource (or npm run bridge) owns' },
  PayloadTooLarge: { code: 'SB_PAYLOAD_TOO_LARGE', status: 413, error: 'PayloadTooLarge', when: 'a body over SOCKETBRIDGE_BODY_LIMIT_BYTES' },
  UnsupportedMediaType: { code: 'SB_UNSUPPORTED_MEDIA_TYPE', status: 415, error: 'UnsupportedMediaType', when: 'a body that is not application/json' },
  TooManyRequests: { code: 'SB_TOO_MANY_REQUESTS', status: 429, error: 'TooManyRequests', when: 'past the sign-in budget of the client address' },
  InternalError: { code: 'SB_INTERNAL', status: 500, error: 'InternalError', when: 'a bug: logged with the request' },
  RegistryUnavailable: { code: 'SB_REGISTRY_UNAVAILABLE', status: 503, error: 'ServiceUnavailable', when: 'Redis is not reachable' },
  PublishFailed: { code: 'SB_PUBLISH_FAILED', status: 503, error: 'ServiceUnavailable', when: 'history or the cluster did not take a publish' },
  ClusterUnavailable: { code: 'SB_CLUSTER_UNAVAILABLE', status: 503, error: 'ServiceUnavailable', when: 'the cluster could not be asked (channel info, presence)' },
} as const;

export type ApiErrorKind = keyof typeof catalogue;

/** The catalogue's entries, for docs and the test that holds docs/api.md to it. */
export const API_ERRORS: Readonly<Record<ApiErrorKind, { code: string; status: number; error: string; when: string }>> = catalogue;

/** One error class per entry, made by @fastify/error: `new ApiErrors.BridgeOwned('…')` has its code and status. */
export const ApiErrors = Object.fromEntries(
  Object.entries(catalogue).map(([kind, entry]) => [kind, createError(entry.code, '%s', entry.status)]),
) as Record<ApiErrorKind, FastifyErrorConstructor<{ code: string; statusCode: number }, [string]>>;

const byCode = new Map<string, (typeof API_ERRORS)[ApiErrorKind]>(Object.values(API_ERRORS).map((entry) => [entry.code, entry]));

/** The catalogue entry of an error made from it, else undefined. */
export function apiErrorOf(error: unknown): (typeof API_ERRORS)[ApiErrorKind] | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? byCode.get(code) : undefined;
}

/** Fastify's own client errors (body too large, wrong content type, the rate limiter's 429) by status. */
const BY_STATUS: Partial<Record<number, ApiErrorKind>> = { 413: 'PayloadTooLarge', 415: 'UnsupportedMediaType', 429: 'TooManyRequests' };

/** The catalogue kind for a 4xx that did not come from the catalogue (Fastify's, a plugin's). */
export function kindOfStatus(status: number): ApiErrorKind {
  return BY_STATUS[status] ?? 'BadRequest';
}

/** The body every error answers with. */
export function errorBody(kind: ApiErrorKind, message: string): { error: string; message: string } {
  return { error: catalogue[kind].error, message };
}

/** Answers with a catalogue error directly (hooks and handlers that reply rather than throw). */
export function sendApiError(reply: FastifyReply, kind: ApiErrorKind, message: string): FastifyReply {
  return reply.code(catalogue[kind].status).send(errorBody(kind, message));
}
