import { clusterMemberEnv, env, loadConfig } from '@socketbridge/common';

/** scc-broker's variable names where upstream has one, SOCKETBRIDGE_* for what is ours. */
export const brokerEnv = {
  ...clusterMemberEnv,
  SCC_BROKER_SERVER_PORT: env.port(8888),
  SCC_BROKER_SERVER_RETRY_DELAY: env.ms(2000),
  SCC_BROKER_SERVER_CONNECT_TIMEOUT: env.ms(10000),
  SCC_BROKER_SERVER_ACK_TIMEOUT: env.ms(10000),
  /** Longest a planned exit waits for workers to move their channels away. */
  SOCKETBRIDGE_DRAIN_TIMEOUT_MS: env.ms(30000),
  /** A draining broker closes once it has no subscribers and has seen no publish for this long. */
  SOCKETBRIDGE_DRAIN_QUIET_MS: env.ms(500),
};

export type BrokerConfig = ReturnType<typeof loadBrokerConfig>;

export function loadBrokerConfig(source: NodeJS.ProcessEnv = process.env) {
  return loadConfig(brokerEnv, source);
}
