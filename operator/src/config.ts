import { hostname } from 'node:os';
import { ConfigError, env, loadConfig } from '@socketbridge/common';

const DEFAULT_RABBITMQ_URL = 'amqp://guest:guest@127.0.0.1:5672';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** `npm run bridge`: the same reconciler against local RabbitMQ and Redis. */
export function loadLocalConfig(source: NodeJS.ProcessEnv = process.env) {
  return loadConfig(
    {
      SOCKETBRIDGE_RABBITMQ_URL: env.rabbitmqUrl(DEFAULT_RABBITMQ_URL),
      SOCKETBRIDGE_REDIS_URL: env.redisUrl(DEFAULT_REDIS_URL),
      SOCKETBRIDGE_RECONCILE_TIMEOUT_MS: env.int(10000, 100, 600000),
    },
    source,
  );
}

/** The controller in Kubernetes (docs/operator.md lists every variable). */
export function loadOperatorConfig(source: NodeJS.ProcessEnv = process.env) {
  const config = loadConfig(
    {
      SOCKETBRIDGE_OPERATOR_NAMESPACE: env.optionalString(),
      SOCKETBRIDGE_REDIS_URL: env.redisUrl(DEFAULT_REDIS_URL),
      SOCKETBRIDGE_RABBITMQ_URL: env.optionalRabbitmqUrl(),
      SOCKETBRIDGE_OPERATOR_PORT: env.port(8080),
      SOCKETBRIDGE_LEASE_NAME: env.string('socketbridge-operator'),
      SOCKETBRIDGE_LEASE_NAMESPACE: env.optionalString(),
      SOCKETBRIDGE_LEASE_DURATION_MS: env.int(15000, 1000, 600000),
      SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS: env.int(10000, 500, 600000),
      SOCKETBRIDGE_LEASE_RETRY_MS: env.int(2000, 100, 600000),
      SOCKETBRIDGE_RESYNC_MS: env.int(60000, 500, 24 * 3600 * 1000),
      SOCKETBRIDGE_RELIST_MS: env.int(600000, 500, 24 * 3600 * 1000),
      SOCKETBRIDGE_WATCH_TIMEOUT_SECONDS: env.int(300, 1, 3600),
      SOCKETBRIDGE_WATCH_IDLE_MS: env.int(150000, 100, 3600000),
      SOCKETBRIDGE_WORKERS: env.int(2, 1, 32),
      SOCKETBRIDGE_BACKOFF_BASE_MS: env.int(1000, 10, 600000),
      SOCKETBRIDGE_BACKOFF_MAX_MS: env.int(300000, 10, 3600000),
      SOCKETBRIDGE_RECONCILE_TIMEOUT_MS: env.int(30000, 100, 600000),
      SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS: env.ms(10000),
      SOCKETBRIDGE_LOG_LEVEL: env.logLevel(),
      POD_NAME: env.optionalString(),
      POD_NAMESPACE: env.optionalString(),
    },
    source,
  );
  const problems: string[] = [];
  if (config.SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS >= config.SOCKETBRIDGE_LEASE_DURATION_MS) {
    problems.push(`  SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS: must be less than SOCKETBRIDGE_LEASE_DURATION_MS (${config.SOCKETBRIDGE_LEASE_DURATION_MS})`);
  }
  if (config.SOCKETBRIDGE_LEASE_RETRY_MS >= config.SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS) {
    problems.push(`  SOCKETBRIDGE_LEASE_RETRY_MS: must be less than SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS (${config.SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS})`);
  }
  if (config.SOCKETBRIDGE_BACKOFF_BASE_MS > config.SOCKETBRIDGE_BACKOFF_MAX_MS) {
    problems.push(`  SOCKETBRIDGE_BACKOFF_BASE_MS: must not exceed SOCKETBRIDGE_BACKOFF_MAX_MS (${config.SOCKETBRIDGE_BACKOFF_MAX_MS})`);
  }
  if (problems.length) throw new ConfigError(`invalid environment:\n${problems.join('\n')}`);
  return {
    ...config,
    identity: config.POD_NAME ?? `${hostname()}-${process.pid}`,
    leaseNamespace: config.SOCKETBRIDGE_LEASE_NAMESPACE ?? config.POD_NAMESPACE ?? config.SOCKETBRIDGE_OPERATOR_NAMESPACE ?? 'default',
  };
}

export type OperatorConfig = ReturnType<typeof loadOperatorConfig>;
