import { z } from 'zod';
import { parseRabbitUrls, redactUrl } from './rabbitmq.js';
import { parseRedisUrl } from './redis.js';

/** Thrown when the environment does not satisfy a service's schema; the message names every bad variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Environment values are strings; these coerce them with messages a person can act on.
 * Unset and empty both mean "use the default", as most orchestrators cannot unset a variable.
 */
const unsetAsUndefined = (v: unknown): unknown => (v === '' ? undefined : v);

/** A URL `parse` accepts; its error is the message, so a typo stops the service at start rather than leaving it retrying against nothing. */
const checkedUrl = (parse: (url: string) => unknown) =>
  z
    .string()
    .min(1)
    .superRefine((url, ctx) => {
      try {
        parse(url);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    });

export const env = {
  port: (fallback: number) =>
    z.preprocess(unsetAsUndefined, z.coerce.number().int().min(0).max(65535).default(fallback)),
  ms: (fallback: number) =>
    z.preprocess(unsetAsUndefined, z.coerce.number().int().min(0).max(24 * 3600 * 1000).default(fallback)),
  int: (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
    z.preprocess(unsetAsUndefined, z.coerce.number().int().min(min).max(max).default(fallback)),
  optionalInt: (min = 0, max = Number.MAX_SAFE_INTEGER) => z.preprocess(unsetAsUndefined, z.coerce.number().int().min(min).max(max).optional()),
  bool: (fallback: boolean) =>
    z.preprocess(
      unsetAsUndefined,
      z
        .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
        .transform((v) => v === 'true' || v === '1' || v === 'yes')
        .default(fallback),
    ),
  string: (fallback: string) => z.preprocess(unsetAsUndefined, z.string().min(1).default(fallback)),
  /** One of a fixed list of words, such as a queue type. */
  oneOf: <const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
    z.preprocess(unsetAsUndefined, z.enum(values, { message: `expected one of ${values.join(', ')}` }).default(fallback)),
  optionalString: () => z.preprocess(unsetAsUndefined, z.string().min(1).optional()),
  /** SOCKETBRIDGE_REDIS_URL: a single node, the Sentinel or the Cluster form, checked here so a bad one stops the start. */
  redisUrl: (fallback: string) => z.preprocess(unsetAsUndefined, checkedUrl(parseRedisUrl).default(fallback)),
  /** SOCKETBRIDGE_RABBITMQ_URL: one amqp(s):// URL or a comma-separated list of a cluster's nodes, checked likewise. */
  rabbitmqUrl: (fallback: string) => z.preprocess(unsetAsUndefined, checkedUrl(parseRabbitUrls).default(fallback)),
  optionalRabbitmqUrl: () => z.preprocess(unsetAsUndefined, checkedUrl(parseRabbitUrls).optional()),
  /** A required secret: no default, so a deployment cannot run with a guessable one. */
  secret: (minLength: number) =>
    z.preprocess(unsetAsUndefined, z.string({ message: 'required' }).min(minLength, `must be at least ${minLength} characters`)),
  /** Comma-separated, blanks dropped. */
  list: () =>
    z.preprocess(
      (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : []),
      z.array(z.string()),
    ),
  logLevel: () =>
    z.preprocess(
      unsetAsUndefined,
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    ),
};

/** Parses `source` (default process.env) against a schema keyed by variable name. */
export function loadConfig<S extends z.ZodRawShape>(
  shape: S,
  source: NodeJS.ProcessEnv = process.env,
): z.infer<z.ZodObject<S>> {
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) picked[key] = source[key];
  const result = z.object(shape).safeParse(picked);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      // A URL's password (a Redis or RabbitMQ URL) stays out of the message, which ends up in logs.
      const got = source[name] === undefined ? undefined : redactUrl(source[name]);
      return `  ${name}: ${issue.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)})`}`;
    });
    throw new ConfigError(`invalid environment:\n${lines.join('\n')}`);
  }
  return result.data;
}
