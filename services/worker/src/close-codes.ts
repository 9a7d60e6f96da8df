/**
 * WebSocket close codes a worker uses on its own initiative. SocketCluster uses 4000-4008, and its
 * clients reconnect by themselves only after codes below 4500 (and not 1000): both of ours ask the
 * client to come back (to another worker, through the load balancer) and recover from history.
 */
export const CLOSE_CODES = {
  /** The worker is shutting down: reconnect, and a load balancer sends you to another worker. */
  draining: 4100,
  /** The socket stopped reading and its outbound buffer passed the limit. */
  slowClient: 4101,
} as const;
