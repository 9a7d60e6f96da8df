import type { FastifyReply, FastifyRequest } from 'fastify';
import { keyMatches } from '@socketbridge/common';
import { sendApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs the admin key (`x-api-key`), checked by `adminGuard` before anything else. */
    admin?: boolean;
  }
}

/** Whether `given` is the admin key, compared in constant time (common's `keyMatches`). */
export function adminKeyCheck(apiKey: string): (given: unknown) => boolean {
  return (given) => keyMatches(typeof given === 'string' ? given : undefined, apiKey);
}

/**
 * The one place admin routes (`config: { admin: true }`, the console's included) check the key: an
 * `onRequest` hook, which runs before the body is read, parsed or validated, so a caller without
 * the key gets 401 and learns nothing about a route's schema.
 */
export function adminGuard(isAdminKey: (given: unknown) => boolean) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.routeOptions.config.admin === true && !isAdminKey(request.headers['x-api-key'])) {
      return sendApiError(reply, 'AdminKeyRequired', 'admin routes need a valid x-api-key header');
    }
  };
}
