import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs the admin key (`x-api-key`), checked by `guardAdminRoutes` before anything else. */
    admin?: boolean;
  }
}

/**
 * Whether `given` is the admin key. Both sides are hashed first, so the comparison takes the same
 * time whatever the length or content of the guess (timingSafeEqual alone throws on a length
 * mismatch, and comparing lengths first would leak the key's length).
 */
export function adminKeyCheck(apiKey: string): (given: unknown) => boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const expected = digest(apiKey);
  return (given) => typeof given === 'string' && timingSafeEqual(digest(given), expected);
}

/**
 * The one place admin routes (`config: { admin: true }`, the console's included) check the key: an
 * `onRequest` hook, which runs before the body is read, parsed or validated, so a caller without
 * the key gets 401 and learns nothing about a route's schema.
 */
export function adminGuard(isAdminKey: (given: unknown) => boolean) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.routeOptions.config.admin === true && !isAdminKey(request.headers['x-api-key'])) {
      return reply.code(401).send({ error: 'Unauthorized', message: 'admin routes need a valid x-api-key header' });
    }
  };
}
