import { clusterMemberEnv, env, loadConfig } from '@socketbridge/common';

export const workerEnv = {
  ...clusterMemberEnv,
  /** SocketCluster's own name for a worker's port. */
  SOCKETCLUSTER_PORT: env.port(8000),
  /** Must be unique per process: workers drop cluster messages stamped with their own id. Generated when unset. */
  SOCKETBRIDGE_INSTANCE_ID: env.optionalString(),
  SCC_BROKER_CLIENT_RETRY_DELAY: env.ms(2000),
  SOCKETBRIDGE_REMAP_SWITCH_DELAY_MS: env.ms(1000),
  SOCKETBRIDGE_REMAP_GRACE_MS: env.ms(2000),
  SOCKETBRIDGE_REMAP_CONFIRM_TIMEOUT_MS: env.ms(5000),
  /** Whether client sockets may publish; the publisher issue turns this off by default. */
  SOCKETBRIDGE_ALLOW_CLIENT_PUBLISH: env.bool(true),
  SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS: env.ms(10000),
};

export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

export function loadWorkerConfig(source: NodeJS.ProcessEnv = process.env) {
  return loadConfig(workerEnv, source);
}
