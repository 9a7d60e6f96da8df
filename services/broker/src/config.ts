import { clusterMemberEnv, env, loadConfig, opsEnv } from '@socketbridge/common';

/** scc-broker's variable names where upstream has one, SOCKETBRIDGE_* for what is ours. */
export const brokerEnv = {
  ...clusterMemberEnv,
  ...opsEnv,
  SCC_BROKER_SERVER_PORT: env.port(8888),
  /** The address to listen on (unset: every interface); `npm start` binds 127.0.0.1. */
  SOCKETBRIDGE_HOST: env.optionalString(),
  SCC_BROKER_SERVER_RETRY_DELAY: env.ms(2000),
  /** A member that has not completed the SocketCluster handshake within this is closed (4005). */
  SCC_BROKER_SERVER_CONNECT_TIMEOUT: env.ms(10000),
  /** Heartbeat to members: a ping this often; a member silent for the timeout is closed (4001). */
  SOCKETBRIDGE_PING_INTERVAL_MS: env.ms(8000),
  SOCKETBRIDGE_PING_TIMEOUT_MS: env.ms(30000),
  /** Largest frame a member may send (ws's own default): a publisher's batch, or one very large message. */
  SOCKETBRIDGE_MAX_PAYLOAD_BYTES: env.int(100 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  /** Longest a planned exit waits for workers to move their channels away. */
  SOCKETBRIDGE_DRAIN_TIMEOUT_MS: env.ms(30000),
  /** A draining broker closes once it has no subscribers and has seen no publish for this long. */
  SOCKETBRIDGE_DRAIN_QUIET_MS: env.ms(500),
};

export type BrokerConfig = ReturnType<typeof loadBrokerConfig>;

export function loadBrokerConfig(source: NodeJS.ProcessEnv = process.env) {
  return loadConfig(brokerEnv, source);
}
