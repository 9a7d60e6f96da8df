import { CLUSTER_KEY_MIN_LENGTH, env, loadConfig, opsEnv } from '@socketbridge/common';

/** Upstream scc-state's variable names and defaults, so existing SCC deployments carry over. */
export const stateEnv = {
  SCC_STATE_SERVER_PORT: env.port(7777),
  SCC_STATE_SERVER_HOST_BIND: env.optionalString(),
  /** Required: members present it in the upgrade's `authKey` query argument. */
  SCC_AUTH_KEY: env.secret(CLUSTER_KEY_MIN_LENGTH),
  ...opsEnv,
  FORWARDED_FOR_HEADER: env.optionalString(),
  SCC_STATE_SERVER_RETRY_DELAY: env.ms(2000),
  SCC_STATE_SERVER_SCALE_OUT_DELAY: env.ms(5000),
  SCC_STATE_SERVER_SCALE_BACK_DELAY: env.ms(1000),
  SCC_STATE_SERVER_STARTUP_DELAY: env.ms(5000),
  SCC_STATE_SERVER_ACK_TIMEOUT: env.ms(10000),
  SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS: env.ms(10000),
  SOCKETBRIDGE_LOG_LEVEL: env.logLevel(),
};

export type StateConfig = ReturnType<typeof loadStateConfig>;

export function loadStateConfig(source: NodeJS.ProcessEnv = process.env) {
  return loadConfig(stateEnv, source);
}
