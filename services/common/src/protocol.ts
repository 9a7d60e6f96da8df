import type { IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import { z } from 'zod';
import type { Logger } from 'pino';
import { env } from './config.js';
import { keyMatches } from './http.js';
import type { ClusterErrorName } from './wire.js';

/**
 * The SCC cluster protocol as scc-broker-client 9.x/10.x and scc-broker 10.x speak it
 * (docs/cluster-protocol.md has the whole exchange).
 */
export const SCC_PATH = '/socketcluster/';
export const INSTANCE_TYPES = ['scc-broker', 'scc-worker'] as const;
export type InstanceType = (typeof INSTANCE_TYPES)[number];
/** Client majors the state server accepts: npm has scc-broker-client 9.2 and scc-broker 10.x. */
export const SUPPORTED_MAJORS = [9, 10] as const;
/** What our broker reports as `version`: it speaks the scc-broker 10.x protocol. */
export const SCC_PROTOCOL_VERSION = '10.0.0';

export const PROCEDURES = {
  brokerJoin: 'sccBrokerJoinCluster',
  brokerLeave: 'sccBrokerLeaveCluster',
  workerJoin: 'sccWorkerJoinCluster',
  workerLeave: 'sccWorkerLeaveCluster',
} as const;

const instanceIp = z
  .string()
  .max(64)
  .refine((ip) => ip === '' || z.ipv4().safeParse(ip).success || z.ipv6().safeParse(ip).success, 'not an IP address')
  .nullish();

export const workerJoinSchema = z.object({
  instanceId: z.string().min(1).max(200),
  instanceIp,
  instanceIpFamily: z.enum(['IPv4', 'IPv6']).nullish(),
});
export const brokerJoinSchema = workerJoinSchema.extend({ instanceSecure: z.boolean().nullish() });

export type WorkerJoinData = z.infer<typeof workerJoinSchema>;
export type BrokerJoinData = z.infer<typeof brokerJoinSchema>;

export interface BrokersSnapshot {
  sccBrokerURIs: string[];
  time: number;
  sccSourceWorkerURI?: string;
}
export interface WorkersSnapshot {
  sccWorkerURIs: string[];
  time: number;
  sccSourceWorkerURI?: string;
}

/** `1.2.3` → 1; anything else (including the strings "null" and "undefined") → NaN. */
export function majorVersion(version: unknown): number {
  const match = typeof version === 'string' ? /^v?(\d+)\.\d+\.\d+/.exec(version) : null;
  return match ? Number(match[1]) : Number.NaN;
}

/** IPv4-mapped IPv6 (`::ffff:10.0.0.1`, how a dual-stack server reports IPv4 peers) back to IPv4. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export function instanceUri(ip: string, port: number | string, secure = false): string {
  const host = isIPv6(ip) ? `[${ip}]` : ip;
  return `${secure ? 'wss' : 'ws'}://${host}:${port}`;
}

/** Shortest cluster key accepted: long enough that guessing it over the network is hopeless. */
export const CLUSTER_KEY_MIN_LENGTH = 16;

/** The env every cluster member reads to find the state server, with upstream's SCC_* names. */
export const clusterMemberEnv = {
  SCC_STATE_SERVER_HOST: env.string('127.0.0.1'),
  SCC_STATE_SERVER_PORT: env.port(7777),
  /** Required: brokers and the state server refuse members without it, so nobody else can read or forge messages. */
  SCC_AUTH_KEY: env.secret(CLUSTER_KEY_MIN_LENGTH),
  SCC_INSTANCE_IP: env.optionalString(),
  SCC_INSTANCE_IP_FAMILY: z.preprocess((v) => (v === '' ? undefined : v), z.enum(['IPv4', 'IPv6']).default('IPv4')),
  SCC_STATE_SERVER_CONNECT_TIMEOUT: env.ms(3000),
  SCC_STATE_SERVER_ACK_TIMEOUT: env.ms(2000),
  SOCKETBRIDGE_LOG_LEVEL: env.logLevel(),
};

/** Members that join like a worker (workers, publishers) also run scc-broker-client and the hand-over. */
export const clusterLinkEnv = {
  ...clusterMemberEnv,
  SCC_BROKER_CLIENT_RETRY_DELAY: env.ms(2000),
  /** After a broker change, how long after our new subscriptions are confirmed we switch publishing. */
  SOCKETBRIDGE_REMAP_SWITCH_DELAY_MS: env.ms(1000),
  /** After switching, how long we keep the old subscriptions. */
  SOCKETBRIDGE_REMAP_GRACE_MS: env.ms(2000),
  SOCKETBRIDGE_REMAP_CONFIRM_TIMEOUT_MS: env.ms(5000),
};

/**
 * The cluster's door, checked on the WebSocket upgrade request by brokers and the state server:
 * a missing or wrong `authKey` query argument (compared in constant time) gets
 * `BadClusterAuthError`, upstream scc-broker's name for it. undefined: let it in.
 */
export function clusterAuthRefusal(request: Pick<IncomingMessage, 'url'>, authKey: string): Error | undefined {
  const given = new URL(request.url ?? '/', 'http://member.invalid').searchParams.get('authKey');
  if (keyMatches(given, authKey)) return undefined;
  const error = new Error('Cannot connect to the cluster without a valid authKey query argument (SCC_AUTH_KEY).');
  error.name = 'BadClusterAuthError' satisfies ClusterErrorName;
  return error;
}

/**
 * What a member logs beside "Socket hung up": socketcluster-client drops the HTTP status of a
 * refused upgrade, so a wrong SCC_AUTH_KEY looks like a dropped connection from this side.
 */
export const HUNG_UP_HINT =
  'if the peer is up, it may have refused our SCC_AUTH_KEY (HTTP 401 at the upgrade; it logs "refused a cluster member"): every member needs the same key';

/** The fields to log with a cluster link error. */
export function linkErrorFields(error: unknown): { err: string; hint?: string } {
  const err = (error as Error | undefined)?.message ?? String(error);
  return err === 'Socket hung up' ? { err, hint: HUNG_UP_HINT } : { err };
}

type ClusterLinkConfig = z.infer<z.ZodObject<typeof clusterLinkEnv>>;

/** joinCluster's options from a member's validated config. */
export function clusterLinkOptions(config: ClusterLinkConfig, instanceId: string, instancePort: number, logger: Logger) {
  return {
    instanceId,
    instancePort,
    instanceIp: config.SCC_INSTANCE_IP ?? null,
    instanceIpFamily: config.SCC_INSTANCE_IP_FAMILY,
    stateServerHost: config.SCC_STATE_SERVER_HOST,
    stateServerPort: config.SCC_STATE_SERVER_PORT,
    authKey: config.SCC_AUTH_KEY,
    stateServerConnectTimeout: config.SCC_STATE_SERVER_CONNECT_TIMEOUT,
    stateServerAckTimeout: config.SCC_STATE_SERVER_ACK_TIMEOUT,
    brokerRetryDelay: config.SCC_BROKER_CLIENT_RETRY_DELAY,
    switchDelayMs: config.SOCKETBRIDGE_REMAP_SWITCH_DELAY_MS,
    graceMs: config.SOCKETBRIDGE_REMAP_GRACE_MS,
    confirmTimeoutMs: config.SOCKETBRIDGE_REMAP_CONFIRM_TIMEOUT_MS,
    logger,
  };
}
