import { randomBytes } from 'node:crypto';
import { ManagedProcess, freePort, repoRoot, spawnNode, waitFor } from './processes.js';

/** Short cluster timers so tests see joins, leaves and hand-overs in well under a second. */
export const fastTimers: Record<string, string> = {
  SCC_STATE_SERVER_STARTUP_DELAY: '500',
  SCC_STATE_SERVER_SCALE_OUT_DELAY: '400',
  SCC_STATE_SERVER_SCALE_BACK_DELAY: '200',
  SCC_STATE_SERVER_RETRY_DELAY: '300',
  SCC_BROKER_SERVER_RETRY_DELAY: '300',
  SCC_BROKER_CLIENT_RETRY_DELAY: '300',
  SOCKETBRIDGE_REMAP_SWITCH_DELAY_MS: '500',
  SOCKETBRIDGE_REMAP_GRACE_MS: '1000',
  SOCKETBRIDGE_DRAIN_QUIET_MS: '300',
  SOCKETBRIDGE_DRAIN_DELAY_MS: '200',
  SOCKETBRIDGE_DRAIN_SPREAD_MS: '300',
  SOCKETBRIDGE_REGISTRY_RESYNC_MS: '1000',
};

/** Secrets made fresh for each run: services refuse to start without them, and no fixed key ships. */
export const devSecrets: Record<string, string> = {
  SOCKETBRIDGE_AUTH_KEY: randomBytes(32).toString('hex'),
  SOCKETBRIDGE_API_KEY: randomBytes(24).toString('hex'),
  /** Joins the cluster: brokers and the state server refuse members without it. */
  SCC_AUTH_KEY: randomBytes(24).toString('hex'),
  /** Opens /metrics, /cluster and /state (Authorization: Bearer). */
  SOCKETBRIDGE_OPS_KEY: randomBytes(24).toString('hex'),
};

/** For tests of the cluster itself: any client may subscribe to any channel and publish. */
export const openChannels: Record<string, string> = {
  SOCKETBRIDGE_PUBLIC_CHANNELS: '#',
  SOCKETBRIDGE_ALLOW_CLIENT_PUBLISH: 'true',
};

export type ServiceName = 'state' | 'broker' | 'worker' | 'publisher';

export interface StateView {
  ready: boolean;
  brokers: Array<{ instanceId: string; uri: string; joinedAt: string }>;
  workers: Array<{ instanceId: string; uri: string; joinedAt: string }>;
  sccBrokerURIs: string[];
  sccWorkerURIs: string[];
}

export interface WorkerView {
  instanceId: string;
  brokerURIs: string[];
  workerURIs: string[];
  /** Whether the worker's control-channel subscription is confirmed by its shard (the server API reaches it). */
  controlSubscribed?: boolean;
}

/** The header that opens the ops endpoints (default: this run's ops key). */
export function opsHeaders(opsKey: string | undefined = devSecrets.SOCKETBRIDGE_OPS_KEY): Record<string, string> {
  return opsKey ? { authorization: `Bearer ${opsKey}` } : {};
}

/** A GET of an ops endpoint (/metrics, /cluster, /state) with the ops key (default: this run's). */
export async function opsFetch(url: string, opsKey: string | undefined = devSecrets.SOCKETBRIDGE_OPS_KEY): Promise<Response> {
  return fetch(url, { headers: opsKey ? { authorization: `Bearer ${opsKey}` } : {} });
}

export async function getJson<T>(url: string, opsKey: string | undefined = devSecrets.SOCKETBRIDGE_OPS_KEY): Promise<T> {
  const response = await opsFetch(url, opsKey);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return (await response.json()) as T;
}

/**
 * The endpoint devkit polls before a member counts as started: its `/readyz`, except the state
 * server's, which stays 503 through its start-up delay, the window in which brokers are meant to
 * join; for it, `/healthz` (it answers). Workers' and publishers'
 * `/readyz` wait the delay out, then until they are connected and subscribed on every broker (docs/reliability.md).
 */
export type StartedWhen = '/readyz' | '/healthz';
const startedWhen: Record<ServiceName, StartedWhen> = { state: '/healthz', broker: '/readyz', worker: '/readyz', publisher: '/readyz' };

export interface StartServiceOptions {
  /** The name in its log lines and errors (default: the service's). */
  label?: string;
  onLine?: (name: string, line: string) => void;
  ownProcessGroup?: boolean;
  /** What to wait for (default: `/readyz`, `/healthz` for the state server). */
  until?: StartedWhen;
  timeoutMs?: number;
}

/**
 * Starts one of our services: learns its port from the process itself once it listens (an IPC
 * message, so any log level and port 0 work), then polls its `/readyz` until it answers 200.
 */
export async function startService(name: ServiceName, env: Record<string, string>, options: StartServiceOptions = {}): Promise<ManagedProcess> {
  const label = options.label ?? name;
  const timeoutMs = options.timeoutMs ?? 30000;
  const started = Date.now();
  const managed = spawnNode(label, `${repoRoot}services/${name}/dist/main.js`, env, options.onLine, options.ownProcessGroup);
  await managed.waitForPort(timeoutMs, `${label} to listen`);
  const until = options.until ?? startedWhen[name];
  await managed.waitForHttp(until, Math.max(1000, timeoutMs - (Date.now() - started)), `${label} to answer ${until} with 200`);
  return managed;
}

/**
 * A whole local cluster of real processes: our state server, brokers (ours or the upstream
 * scc-broker package) and workers (ours or a plain upstream scc-broker-client worker).
 */
export interface LocalClusterOptions {
  /** Environment for every member, over `timers`. */
  env?: Record<string, string>;
  /** Cluster timers; tests use `fastTimers`, `npm start` the services' defaults. */
  timers?: Record<string, string>;
  /** First port for each kind, counting up; unset means an OS-chosen free port. */
  ports?: { state?: number; broker?: number; worker?: number; publisher?: number };
  /** Sees every line each member prints. */
  onLine?: (name: string, line: string) => void;
  /** Start members in their own process group, so a terminal's Ctrl-C reaches only the caller. */
  ownProcessGroup?: boolean;
  /** The address every member listens on (default 127.0.0.1: nothing is reachable from elsewhere). */
  host?: string;
  /**
   * What a publisher must answer before it counts as started (default `/readyz`, which waits for
   * RabbitMQ and Redis). `npm start` passes `/healthz` when either is missing: the publisher then
   * starts without them and waits for them itself.
   */
  publishersStartedWhen?: StartedWhen;
}

export class LocalCluster {
  state!: ManagedProcess;
  readonly brokers: ManagedProcess[] = [];
  readonly workers: ManagedProcess[] = [];
  readonly publishers: ManagedProcess[] = [];
  readonly env: Record<string, string>;

  constructor(private readonly options: LocalClusterOptions = {}) {
    const host = options.host ?? '127.0.0.1';
    const bind = { SCC_STATE_SERVER_HOST_BIND: host, SOCKETBRIDGE_HOST: host };
    this.env = { ...devSecrets, ...bind, ...(options.timers ?? fastTimers), ...options.env };
    // The publishers' sign-in budget lives in Redis: keys of this cluster's own (they expire after a
    // minute), so test files never count each other's attempts.
    this.env.SOCKETBRIDGE_RATE_LIMIT_PREFIX ??= `socketbridge:sign-in:${randomBytes(6).toString('hex')}:`;
  }

  static async start(options: LocalClusterOptions & { brokers?: number; workers?: number; publishers?: number } = {}): Promise<LocalCluster> {
    const cluster = new LocalCluster(options);
    await cluster.startState(options.ports?.state ?? 0);
    for (let i = 0; i < (options.brokers ?? 2); i++) await cluster.addBroker();
    for (let i = 0; i < (options.workers ?? 2); i++) await cluster.addWorker();
    for (let i = 0; i < (options.publishers ?? 0); i++) await cluster.addPublisher();
    await cluster.waitForMembers();
    return cluster;
  }

  memberEnv(): Record<string, string> {
    return { ...this.env, SCC_STATE_SERVER_HOST: '127.0.0.1', SCC_STATE_SERVER_PORT: String(this.state.port) };
  }

  async startState(port = 0): Promise<ManagedProcess> {
    this.state = await startService('state', { ...this.env, SCC_STATE_SERVER_PORT: String(port) }, this.serviceOptions('state'));
    return this.state;
  }

  async addBroker(kind: 'ours' | 'upstream' = 'ours'): Promise<ManagedProcess> {
    const label = `broker-${this.brokers.length + 1}${kind === 'upstream' ? '-upstream' : ''}`;
    let broker: ManagedProcess;
    if (kind === 'ours') {
      broker = await startService('broker', { ...this.memberEnv(), SCC_BROKER_SERVER_PORT: String(this.nextPort('broker', this.brokers.length)) }, this.serviceOptions(label));
    } else {
      const port = this.nextPort('broker', this.brokers.length) || (await freePort());
      broker = spawnNode(
        label,
        `${repoRoot}node_modules/scc-broker/server.js`,
        { ...this.memberEnv(), SCC_BROKER_SERVER_PORT: String(port), SCC_BROKER_SERVER_LOG_LEVEL: '1' },
        this.options.onLine,
        this.options.ownProcessGroup,
      );
      broker.port = port;
      await waitFor(async () => (await this.stateView()).sccBrokerURIs.some((u) => u.endsWith(`:${port}`)), 20000, `${label} to join`);
    }
    this.brokers.push(broker);
    return broker;
  }

  async addWorker(kind: 'ours' | 'upstream' = 'ours'): Promise<ManagedProcess> {
    const label = `worker-${this.workers.length + 1}${kind === 'upstream' ? '-upstream' : ''}`;
    const env = { ...this.memberEnv(), SOCKETCLUSTER_PORT: String(this.nextPort('worker', this.workers.length)) };
    const worker =
      kind === 'ours'
        ? await startService('worker', env, this.serviceOptions(label))
        : spawnNode(label, `${repoRoot}services/devkit/dist/upstream-worker.js`, env, this.options.onLine, this.options.ownProcessGroup);
    // Upstream's worker has no /readyz: it counts as started once it listens (waitForMembers sees it join).
    if (kind === 'upstream') await worker.waitForPort(20000, `${label} to listen`);
    this.workers.push(worker);
    return worker;
  }

  /** A publisher joins the cluster like a worker; `env` adds to (or overrides) the cluster's. */
  async addPublisher(env: Record<string, string> = {}): Promise<ManagedProcess> {
    const label = `publisher-${this.publishers.length + 1}`;
    const port = this.nextPort('publisher', this.publishers.length);
    const publisher = await startService('publisher', { ...this.memberEnv(), SOCKETBRIDGE_PORT: String(port), ...env }, {
      ...this.serviceOptions(label),
      ...(this.options.publishersStartedWhen ? { until: this.options.publishersStartedWhen } : {}),
    });
    this.publishers.push(publisher);
    return publisher;
  }

  private serviceOptions(label: string): StartServiceOptions {
    return { label, onLine: this.options.onLine, ownProcessGroup: this.options.ownProcessGroup };
  }

  private nextPort(kind: 'broker' | 'worker' | 'publisher', index: number): number {
    const base = this.options.ports?.[kind];
    return base ? base + index : 0;
  }

  async stateView(): Promise<StateView> {
    return getJson<StateView>(`http://127.0.0.1:${this.state.port}/state`, this.env.SOCKETBRIDGE_OPS_KEY);
  }

  async workerView(worker: ManagedProcess): Promise<WorkerView> {
    return getJson<WorkerView>(`http://127.0.0.1:${worker.port}/cluster`, this.env.SOCKETBRIDGE_OPS_KEY);
  }

  live(list: ManagedProcess[]): ManagedProcess[] {
    return list.filter((p) => p.running);
  }

  /** Waits until the state server lists every running member and every worker maps over the same brokers. */
  async waitForMembers(timeoutMs = 20000): Promise<string[]> {
    let uris: string[] = [];
    await waitFor(
      async () => {
        try {
          const view = await this.stateView();
          const brokers = this.live(this.brokers);
          const members = [...this.live(this.workers), ...this.live(this.publishers)];
          if (view.sccBrokerURIs.length !== brokers.length || view.workers.length !== members.length) return false;
          uris = view.sccBrokerURIs;
          for (const member of members) {
            const mine = await this.workerView(member);
            if (mine.brokerURIs.join() !== uris.join()) return false;
          }
          return true;
        } catch {
          return false;
        }
      },
      timeoutMs,
      'the cluster to agree on its members',
      100,
    );
    return uris;
  }

  /** Kills every member at once (tests). */
  async stop(): Promise<void> {
    await Promise.all([...this.publishers, ...this.workers, ...this.brokers, this.state].filter(Boolean).map((p) => p.stop('SIGKILL', 5000)));
  }

  /** Stops the way an operator would: workers drain first, then brokers, then the state server. */
  async shutdown(timeoutMs = 40000): Promise<void> {
    for (const tier of [this.publishers, this.workers, this.brokers, [this.state]]) {
      await Promise.all(tier.filter((p) => p?.running).map((p) => p.stop('SIGTERM', timeoutMs)));
    }
  }
}
