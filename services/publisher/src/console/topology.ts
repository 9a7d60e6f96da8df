/**
 * The cluster as the console shows it: the state server's member lists, each member asked for its
 * own numbers (`/cluster`, `/metrics`). Members that do not answer in time are listed as unreachable.
 */

export interface MemberView {
  instanceId: string;
  uri: string;
  joinedAt: string;
  reachable: boolean;
  error?: string;
}

export interface BrokerView extends MemberView {
  connections?: number;
  subscriptions?: number;
  messages?: number;
}

export interface WorkerView extends MemberView {
  connections?: number;
  subscriptions?: number;
  deliveries?: number;
}

export interface PublisherView extends MemberView {
  self: boolean;
}

export interface Topology {
  state: { url: string; reachable: boolean; ready?: boolean; error?: string };
  brokers: BrokerView[];
  workers: WorkerView[];
  publishers: PublisherView[];
  /** Where the console's channel tail connects: SOCKETBRIDGE_CONSOLE_WORKER_URL, else the first worker. */
  tailUrl: string | null;
  at: string;
}

interface StateAnswer {
  ready: boolean;
  brokers: Array<{ instanceId: string; uri: string; joinedAt: string }>;
  workers: Array<{ instanceId: string; uri: string; joinedAt: string }>;
}

export interface TopologyOptions {
  stateHost: string;
  statePort: number;
  selfInstanceId: string;
  tailUrl?: string | undefined;
  /** SOCKETBRIDGE_OPS_KEY: members answer `/state`, `/cluster` and `/metrics` only with it. */
  opsKey: string;
  timeoutMs?: number;
}

/** Sums every series of each named metric in Prometheus text (labels ignored). */
export function sumMetrics(text: string, names: readonly string[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || !names.includes(match[1]!)) continue;
    const value = Number(match[3]);
    if (Number.isFinite(value)) sums[match[1]!] = (sums[match[1]!] ?? 0) + value;
  }
  return sums;
}

/** ws://host:port → http://host:port (members serve HTTP on their WebSocket port). */
export function httpBase(uri: string): string {
  return uri.replace(/^ws(s?):\/\//, 'http$1://').replace(/\/+$/, '');
}

async function get(url: string, timeoutMs: number, opsKey: string): Promise<Response> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${opsKey}` }, signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return response;
}

export async function readTopology(options: TopologyOptions): Promise<Topology> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const stateUrl = `http://${options.stateHost.includes(':') ? `[${options.stateHost}]` : options.stateHost}:${options.statePort}`;
  const at = new Date().toISOString();
  let state: StateAnswer;
  try {
    state = (await (await get(`${stateUrl}/state`, timeoutMs, options.opsKey)).json()) as StateAnswer;
  } catch (error) {
    return {
      state: { url: stateUrl, reachable: false, error: (error as Error).message },
      brokers: [],
      workers: [],
      publishers: [],
      tailUrl: options.tailUrl ?? null,
      at,
    };
  }

  const brokers = await Promise.all(
    state.brokers.map(async (member): Promise<BrokerView> => {
      try {
        const sums = sumMetrics(await (await get(`${httpBase(member.uri)}/metrics`, timeoutMs, options.opsKey)).text(), [
          'socketbridge_broker_connections',
          'socketbridge_broker_subscriptions',
          'socketbridge_broker_messages_total',
        ]);
        return {
          ...member,
          reachable: true,
          connections: sums.socketbridge_broker_connections,
          subscriptions: sums.socketbridge_broker_subscriptions,
          messages: sums.socketbridge_broker_messages_total,
        };
      } catch (error) {
        return { ...member, reachable: false, error: (error as Error).message };
      }
    }),
  );

  // Publishers join the cluster as workers: the state server lists them together. A worker's
  // /cluster counts its client sockets; a publisher's does not.
  const workers: WorkerView[] = [];
  const publishers: PublisherView[] = [];
  await Promise.all(
    state.workers.map(async (member) => {
      if (member.instanceId === options.selfInstanceId) {
        publishers.push({ ...member, reachable: true, self: true });
        return;
      }
      const base = httpBase(member.uri);
      try {
        const cluster = (await (await get(`${base}/cluster`, timeoutMs, options.opsKey)).json()) as { connections?: unknown };
        if (typeof cluster.connections !== 'number') {
          publishers.push({ ...member, reachable: true, self: false });
          return;
        }
        const sums = sumMetrics(await (await get(`${base}/metrics`, timeoutMs, options.opsKey)).text(), [
          'socketbridge_connections',
          'socketbridge_subscriptions',
          'socketbridge_deliveries_total',
        ]);
        workers.push({
          ...member,
          reachable: true,
          connections: cluster.connections,
          subscriptions: sums.socketbridge_subscriptions,
          deliveries: sums.socketbridge_deliveries_total,
        });
      } catch (error) {
        workers.push({ ...member, reachable: false, error: (error as Error).message });
      }
    }),
  );
  const byUri = (a: MemberView, b: MemberView) => a.uri.localeCompare(b.uri);
  workers.sort(byUri);
  publishers.sort(byUri);
  return {
    state: { url: stateUrl, reachable: true, ready: state.ready },
    brokers: brokers.sort(byUri),
    workers,
    publishers,
    tailUrl: options.tailUrl ?? workers.find((w) => w.reachable)?.uri ?? null,
    at,
  };
}
