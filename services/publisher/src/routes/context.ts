import type { RedisClient } from '@socketbridge/common';
import { ErrorBody } from '../schemas.js';
import { ApiErrors } from '../errors.js';

/** The routes' error answers, as their OpenAPI responses declare them. */
export const errorResponses = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody, 429: ErrorBody, 503: ErrorBody };

export const REGISTRY_DOWN = 'the registry (Redis) is unavailable: retry shortly';

/** A preHandler for routes that need Redis: 503 at once while it is away, rather than a timeout. */
export function needsRegistry(redis: RedisClient) {
  return async () => {
    if (redis.status !== 'ready') throw new ApiErrors.RegistryUnavailable(REGISTRY_DOWN);
  };
}
