/**
 * The rendered chart's pods as podman containers, run the way a kubelet would run them, on one host:
 *
 * - every container of every Deployment (times its replicas) runs from the rendered image with the
 *   rendered `command` (as the entrypoint) and `args`, `env` resolved as the kubelet resolves it
 *   (secretKeyRef from the rendered Secret, fieldRef for the pod's name, namespace and IP, $(VAR)
 *   references), the securityContext's user and group, `--read-only` for readOnlyRootFilesystem
 *   (and no tmpfs but the emptyDir volumes the pod mounts), dropped capabilities, no-new-privileges,
 *   the memory and CPU limits, and its terminationGracePeriodSeconds as the stop timeout;
 * - volumes: an emptyDir is a tmpfs; a secret or configMap volume is its keys (those `items` names,
 *   else every key) written as text files (mode 0644) into a folder of the pod's own, mounted read-only,
 *   and a Secret, ConfigMap or key the render does not hold fails the pod's start (the kubelet's
 *   FailedMount) unless the volume is optional; nothing else is emulated;
 * - containers share the host network, so each container port gets a free host port: a variable
 *   naming the container's own port (…PORT = containerPort) gets it, and the probes use it;
 * - each Service is a TCP proxy on a free 127.0.0.1 port that balances over the ready pods its
 *   selector matches (what kube-proxy does with the Endpoints); a variable naming a Service (its name,
 *   or a URL with it as host) gets 127.0.0.1 and that proxy's port, as does a …PORT variable holding
 *   the port of a Service the same container names (only …HOST/…ADDR variables and URLs are read
 *   as hostnames: a Lease may share a Service's name);
 * - the startup, liveness and readiness probes are polled with their rendered timings: readiness
 *   moves the pod in and out of its Services; a failed liveness or startup probe, or an exit,
 *   restarts the container (counted, so tests can require none).
 */
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from '@socketbridge/devkit';
import { OWNER_LABEL, podman, podmanOk, removeContainers, ULIMITS } from './podman.js';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  binaryData?: Record<string, string>;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: unknown;
  };
}

interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number | string; host?: string };
  exec?: { command: string[] };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  resources?: { limits?: { memory?: string; cpu?: string } };
}

export interface PodSpec {
  containers: ContainerSpec[];
  securityContext?: SecurityContext & { fsGroup?: number };
  terminationGracePeriodSeconds?: number;
  volumes?: Volume[];
}

interface KeyToPath {
  key: string;
  path: string;
}

interface Volume {
  name: string;
  emptyDir?: unknown;
  secret?: { secretName: string; items?: KeyToPath[]; optional?: boolean };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
}

interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
}

/** A probe's outcome log, for assertions and failure messages. */
export interface ProbeEvent {
  at: number;
  kind: 'startup' | 'liveness' | 'readiness';
  ok: boolean;
  detail: string;
}

const toInt = (v: unknown) => (typeof v === 'number' ? v : Number.parseInt(String(v), 10));

/** A Kubernetes quantity ("256Mi", "1G", "500m", "2") as a number (bytes, or cores for CPU). */
export function quantity(value: string | number): number {
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$/.exec(String(value));
  if (!m) throw new Error(`not a quantity: ${value}`);
  const factor: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12, m: 1e-3 };
  return Number(m[1]) * (m[2] ? factor[m[2]]! : 1);
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Kubernetes' $(VAR) expansion: references to earlier variables; $$ escapes. */
function expand(value: string, env: Map<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && env.has(name) ? env.get(name)! : match;
  });
}

function decodeSecret(object: K8sObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(object.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  for (const [k, v] of Object.entries(object.stringData ?? {})) out[k] = v;
  return out;
}

function decodeConfigMap(object: K8sObject): Record<string, string> {
  const out: Record<string, string> = { ...object.data };
  for (const [k, v] of Object.entries(object.binaryData ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

/** One Service: a TCP proxy per port over the ready pods its selector matches. */
class ServiceProxy {
  readonly listeners = new Map<number, { server: Server; hostPort: number }>();
  private next = 0;
  readonly sockets = new Set<Socket>();

  constructor(
    readonly object: K8sObject,
    private readonly cluster: PodCluster,
  ) {}

  get name(): string {
    return this.object.metadata.name;
  }
  get ports(): ServicePort[] {
    return (this.object.spec?.ports as ServicePort[] | undefined) ?? [];
  }
  get selector(): Record<string, string> {
    return (this.object.spec?.selector as Record<string, string> | undefined) ?? {};
  }

  async listen(): Promise<void> {
    for (const port of this.ports) {
      const server = createServer((socket) => this.route(socket, port));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const address = server.address();
      this.listeners.set(port.port, { server, hostPort: typeof address === 'object' && address ? address.port : 0 });
    }
  }

  hostPort(port: number): number | undefined {
    return this.listeners.get(port)?.hostPort;
  }

  endpoints(): Pod[] {
    return this.cluster.pods.filter((pod) => pod.ready && !pod.stopping && labelsMatch(this.selector, pod.labels));
  }

  private route(client: Socket, port: ServicePort): void {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    const ready = this.endpoints();
    if (ready.length === 0) {
      client.destroy();
      return;
    }
    const pod = ready[this.next++ % ready.length]!;
    const target = pod.hostPortOf(port.targetPort ?? port.port);
    if (target === undefined) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: target });
    this.sockets.add(upstream);
    pod.connections++;
    upstream.once('close', () => {
      this.sockets.delete(upstream);
      pod.connections--;
    });
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once('error', end);
    upstream.once('error', end);
    client.once('close', end);
    upstream.once('close', end);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([...this.listeners.values()].map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** One pod (one container: the chart's pods have one) as a podman container. */
export class Pod {
  ready = false;
  started = false;
  stopping = false;
  restarts = 0;
  /** Open connections a Service routed to this pod. */
  connections = 0;
  readonly events: ProbeEvent[] = [];
  readonly exits: string[] = [];
  /** containerPort -> host port */
  readonly hostPorts = new Map<number, number>();
  argv: string[] = [];
  env: Record<string, string> = {};
  private timers = new Set<NodeJS.Timeout>();
  private generation = 0;
  /** Holds the files of this pod's secret and configMap volumes, one folder each; removed by dispose(). */
  private volumeDir: string | undefined;

  constructor(
    readonly name: string,
    readonly owner: K8sObject,
    readonly podSpec: PodSpec,
    readonly container: ContainerSpec,
    readonly labels: Record<string, string>,
    readonly cluster: PodCluster,
  ) {}

  get component(): string {
    return this.labels['app.kubernetes.io/component'] ?? this.owner.metadata.name;
  }
  get grace(): number {
    return this.podSpec.terminationGracePeriodSeconds ?? 30;
  }

  hostPortOf(port: number | string): number | undefined {
    if (typeof port === 'number' || /^\d+$/.test(String(port))) return this.hostPorts.get(toInt(port));
    const named = this.container.ports?.find((p) => p.name === port);
    return named ? this.hostPorts.get(named.containerPort) : undefined;
  }

  async allocatePorts(): Promise<void> {
    for (const port of this.container.ports ?? []) this.hostPorts.set(port.containerPort, await freePort());
  }

  /** The container's environment as the kubelet gives it, then mapped onto this host. */
  resolveEnv(): Record<string, string> {
    const env = new Map<string, string>();
    const namedServices = new Set<ServiceProxy>();
    const portVars: [string, string][] = [];
    for (const variable of this.container.env ?? []) {
      let value: string;
      if (variable.valueFrom) {
        const from = variable.valueFrom;
        if (from.secretKeyRef) {
          const secret = this.cluster.secrets.get(from.secretKeyRef.name);
          const found = secret?.[from.secretKeyRef.key];
          if (found === undefined) {
            if (from.secretKeyRef.optional) continue;
            throw new Error(`${this.name}: ${variable.name} refers to secret ${from.secretKeyRef.name} key ${from.secretKeyRef.key}, which the render does not hold (the kubelet would fail with CreateContainerConfigError)`);
          }
          value = found;
        } else if (from.fieldRef) {
          const field = from.fieldRef.fieldPath;
          if (field === 'status.podIP' || field === 'status.hostIP') value = '127.0.0.1';
          else if (field === 'metadata.name' || field === 'spec.nodeName') value = this.name;
          else if (field === 'metadata.namespace') value = this.cluster.namespace;
          else if (field === 'spec.serviceAccountName') value = String((this.podSpec as { serviceAccountName?: string }).serviceAccountName ?? 'default');
          else throw new Error(`${this.name}: ${variable.name}: fieldRef ${field} is not emulated`);
        } else {
          throw new Error(`${this.name}: ${variable.name}: ${Object.keys(from).join(', ')} is not emulated`);
        }
      } else {
        value = expand(variable.value ?? '', env);
      }
      // Only where a hostname goes (…HOST, …ADDR, …ADDRESS, a URL): a Lease or Secret may share a Service's name.
      const mapped = /(HOST|ADDR|ADDRESS)$/.test(variable.name) || /^[a-z][a-z0-9+.-]*:\/\//.test(value) ? this.mapHost(value, namedServices) : value;
      if (/PORT$/.test(variable.name)) portVars.push([variable.name, mapped]);
      env.set(variable.name, mapped);
    }
    // Ports: the container's own port, else the port of a Service the container names.
    for (const [name, value] of portVars) {
      if (!/^\d+$/.test(value)) continue;
      const own = this.hostPorts.get(toInt(value));
      if (own !== undefined) {
        env.set(name, String(own));
        continue;
      }
      for (const service of namedServices) {
        const proxied = service.hostPort(toInt(value));
        if (proxied !== undefined) {
          env.set(name, String(proxied));
          break;
        }
      }
    }
    // What the kubelet adds to every container when the cluster has an API server.
    const api = this.cluster.kubernetes;
    if (api) {
      env.set('KUBERNETES_SERVICE_HOST', api.host);
      env.set('KUBERNETES_SERVICE_PORT', String(api.port));
    }
    return Object.fromEntries(env);
  }

  /** A Service's DNS name (alone or as a URL's host) -> 127.0.0.1 (and the proxy's port in a URL). */
  private mapHost(value: string, named: Set<ServiceProxy>): string {
    for (const service of this.cluster.services.values()) {
      const names = this.cluster.dnsNames(service.name);
      if (names.includes(value)) {
        named.add(service);
        return '127.0.0.1';
      }
      if (/^[a-z]+:\/\//.test(value)) {
        let url: URL;
        try {
          url = new URL(value);
        } catch {
          continue;
        }
        if (!names.includes(url.hostname)) continue;
        const port = url.port ? toInt(url.port) : service.ports[0]?.port;
        const proxied = port === undefined ? undefined : service.hostPort(port);
        if (proxied === undefined) throw new Error(`${this.name}: ${value} names port ${port} that Service ${service.name} does not have`);
        named.add(service);
        url.hostname = '127.0.0.1';
        url.port = String(proxied);
        // new URL() adds a trailing slash to an empty path; keep the value as it was written otherwise.
        return value.endsWith('/') || url.pathname !== '/' ? url.toString() : url.toString().replace(/\/$/, '');
      }
    }
    return value;
  }

  /** podman run arguments, from the pod and container specs. */
  runArgs(): string[] {
    const pod = this.podSpec.securityContext ?? {};
    const own = this.container.securityContext ?? {};
    const user = own.runAsUser ?? pod.runAsUser;
    const group = own.runAsGroup ?? pod.runAsGroup;
    const nonRoot = own.runAsNonRoot ?? pod.runAsNonRoot;
    if (nonRoot && (user === undefined || user === 0)) {
      // The kubelet checks the image's user then; these tests only run charts that name one.
      throw new Error(`${this.name}: runAsNonRoot without a numeric non-root runAsUser`);
    }
    const args = ['run', '--detach', '--name', this.name, '--network', 'host', ...ULIMITS, '--stop-timeout', String(this.grace)];
    if (user !== undefined) args.push('--user', group !== undefined ? `${user}:${group}` : String(user));
    if (pod.fsGroup !== undefined) args.push('--group-add', String(pod.fsGroup));
    if (own.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
    if (own.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    for (const cap of own.capabilities?.drop ?? []) args.push('--cap-drop', cap);
    for (const cap of own.capabilities?.add ?? []) args.push('--cap-add', cap);
    for (const mount of this.container.volumeMounts ?? []) {
      const volume = this.podSpec.volumes?.find((v) => v.name === mount.name);
      if (mount.subPath !== undefined) throw new Error(`${this.name}: volume mount ${mount.name} has a subPath, which is not emulated`);
      if (volume?.emptyDir !== undefined) {
        // An emptyDir is writable by the pod's user (fsGroup owns it); this podman takes no uid= option.
        args.push('--tmpfs', `${mount.mountPath}:rw,nosuid,nodev,mode=1777`);
      } else if (volume?.secret || volume?.configMap) {
        // Read-only whatever the mount says, as the kubelet mounts these.
        args.push('--volume', `${this.writeVolume(volume)}:${mount.mountPath}:ro`);
      } else {
        throw new Error(`${this.name}: volume ${mount.name} is not an emptyDir, secret or configMap, which is all this emulates`);
      }
    }
    const api = this.cluster.kubernetes;
    if (api) {
      const spec = this.podSpec as PodSpec & { automountServiceAccountToken?: boolean; serviceAccountName?: string };
      if (spec.automountServiceAccountToken !== false) {
        args.push('--volume', `${api.serviceAccountDir}/${spec.serviceAccountName ?? 'default'}:/var/run/secrets/kubernetes.io/serviceaccount:ro`);
      }
    }
    // Limits as the kubelet sets them in the container's cgroup (requests only schedule).
    const limits = this.container.resources?.limits ?? {};
    if (limits.memory !== undefined) args.push('--memory', String(Math.round(quantity(limits.memory))));
    if (limits.cpu !== undefined) args.push('--cpus', String(quantity(limits.cpu)));
    for (const [name, value] of Object.entries(this.env)) args.push('--env', `${name}=${value}`);
    args.push('--label', `socketbridge.test/run=${this.cluster.runId}`, '--label', `${OWNER_LABEL}=${process.pid}`);
    if (this.container.command) args.push('--entrypoint', JSON.stringify(this.container.command));
    args.push(this.container.image, ...(this.container.args ?? []));
    return args;
  }

  /** A secret or configMap volume's files, as the kubelet writes them; returns their folder. */
  private writeVolume(volume: Volume): string {
    const source = volume.secret
      ? { kind: 'Secret', name: volume.secret.secretName, items: volume.secret.items, optional: volume.secret.optional, data: this.cluster.secrets.get(volume.secret.secretName) }
      : { kind: 'ConfigMap', name: volume.configMap!.name, items: volume.configMap!.items, optional: volume.configMap!.optional, data: this.cluster.configMaps.get(volume.configMap!.name) };
    const refused = (what: string) => new Error(`${this.name}: volume ${volume.name}: ${what}, which the render does not hold (the kubelet would not start the pod: FailedMount)`);
    if (!source.data && !source.optional) throw refused(`${source.kind} ${source.name}`);
    const data = source.data ?? {};
    if (!this.volumeDir) {
      this.volumeDir = mkdtempSync(join(tmpdir(), `${this.name}-volumes-`));
      // The container's user (not this process's) reads it: mkdtemp's 0700 would shut it out.
      chmodSync(this.volumeDir, 0o755);
    }
    const dir = join(this.volumeDir, volume.name);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    for (const { key, path } of source.items ?? Object.keys(data).map((key) => ({ key, path: key }))) {
      const value = data[key];
      if (value === undefined) {
        if (source.optional) continue;
        throw refused(`key ${key} of ${source.kind} ${source.name}`);
      }
      if (path.startsWith('/') || path.split('/').includes('..')) throw new Error(`${this.name}: volume ${volume.name}: item path ${path} leaves the volume (the API server refuses it)`);
      const file = join(dir, path);
      mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
      writeFileSync(file, value);
      // The kubelet's defaultMode, whatever this process's umask.
      chmodSync(file, 0o644);
    }
    return dir;
  }

  async start(): Promise<void> {
    this.env = this.resolveEnv();
    this.argv = this.runArgs();
    await podmanOk(this.argv);
    this.beginProbing();
  }

  private schedule(fn: () => void | Promise<void>, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void fn();
    }, ms);
    this.timers.add(timer);
  }

  private stopProbing(): void {
    this.generation++;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** The kubelet's prober: startup first, then liveness and readiness, each on its own period. */
  private beginProbing(): void {
    const generation = ++this.generation;
    this.started = false;
    this.ready = false;
    const alive = () => generation === this.generation && !this.stopping;
    const { startupProbe, livenessProbe, readinessProbe } = this.container;
    const afterStartup = () => {
      this.started = true;
      if (livenessProbe) this.loop('liveness', livenessProbe, alive, () => void this.restart('liveness probe failed'));
      if (readinessProbe) this.loop('readiness', readinessProbe, alive);
      else this.ready = true;
    };
    if (startupProbe) this.loop('startup', startupProbe, alive, () => void this.restart('startup probe failed'), afterStartup);
    else afterStartup();
    this.watchExit(alive);
  }

  private loop(kind: ProbeEvent['kind'], probe: Probe, alive: () => boolean, onFailure?: () => void, onFirstSuccess?: () => void): void {
    const period = (probe.periodSeconds ?? 10) * 1000;
    const failureThreshold = probe.failureThreshold ?? 3;
    const successThreshold = probe.successThreshold ?? 1;
    let failures = 0;
    let successes = 0;
    const tick = async () => {
      if (!alive()) return;
      const { ok, detail } = await this.runProbe(probe);
      if (!alive()) return;
      this.events.push({ at: Date.now(), kind, ok, detail });
      if (ok) {
        failures = 0;
        successes++;
        if (kind === 'readiness' && successes >= successThreshold) this.ready = true;
        if (kind === 'startup') {
          onFirstSuccess?.();
          return;
        }
      } else {
        successes = 0;
        failures++;
        if (failures >= failureThreshold) {
          if (kind === 'readiness') this.ready = false;
          else {
            onFailure?.();
            return;
          }
        }
      }
      this.schedule(tick, period);
    };
    this.schedule(tick, (probe.initialDelaySeconds ?? 0) * 1000);
  }

  async runProbe(probe: Probe): Promise<{ ok: boolean; detail: string }> {
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    try {
      if (probe.httpGet) {
        const port = this.hostPortOf(probe.httpGet.port);
        if (port === undefined) return { ok: false, detail: `no port ${probe.httpGet.port}` };
        const scheme = (probe.httpGet.scheme ?? 'HTTP').toLowerCase();
        const headers = Object.fromEntries((probe.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value]));
        const response = await fetch(`${scheme}://127.0.0.1:${port}${probe.httpGet.path ?? '/'}`, { headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        await response.arrayBuffer();
        return { ok: response.status >= 200 && response.status < 400, detail: `${probe.httpGet.path ?? '/'} ${response.status}` };
      }
      if (probe.tcpSocket) {
        const port = this.hostPortOf(probe.tcpSocket.port);
        if (port === undefined) return { ok: false, detail: `no port ${probe.tcpSocket.port}` };
        const socket = createConnection({ host: '127.0.0.1', port });
        socket.setTimeout(timeoutMs, () => socket.destroy(new Error('timeout')));
        await once(socket, 'connect');
        socket.destroy();
        return { ok: true, detail: `tcp ${port}` };
      }
      if (probe.exec) {
        const result = await podman(['exec', this.name, ...probe.exec.command], timeoutMs);
        return { ok: result.code === 0, detail: `exec exit ${result.code}` };
      }
      return { ok: false, detail: 'no handler' };
    } catch (error) {
      return { ok: false, detail: (error as Error).message };
    }
  }

  /** Restarts the container when it exits, as restartPolicy Always does. */
  private watchExit(alive: () => boolean): void {
    const check = async () => {
      if (!alive()) return;
      const state = await this.state();
      if (!alive()) return;
      if (state.status === 'exited' || state.status === 'stopped') {
        this.exits.push(`exit ${state.exitCode}`);
        await this.restart(`exited ${state.exitCode}`);
        return;
      }
      this.schedule(check, 1000);
    };
    this.schedule(check, 1000);
  }

  async state(): Promise<{ status: string; exitCode: number }> {
    const result = await podman(['inspect', '--type', 'container', '--format', '{{.State.Status}} {{.State.ExitCode}}', this.name]);
    const [status = 'missing', code = '-1'] = result.stdout.trim().split(' ');
    return { status: result.code === 0 ? status : 'missing', exitCode: toInt(code) };
  }

  private async restart(why: string): Promise<void> {
    if (this.stopping) return;
    this.stopProbing();
    this.ready = false;
    this.restarts++;
    this.exits.push(why);
    await podman(['restart', '--time', String(this.grace), this.name], (this.grace + 30) * 1000);
    if (!this.stopping) this.beginProbing();
  }

  /** As on pod deletion: out of the Services, SIGTERM, SIGKILL after the grace period. Returns seconds taken and the exit code. */
  async terminate(): Promise<{ seconds: number; exitCode: number }> {
    this.stopping = true;
    this.ready = false;
    this.stopProbing();
    const started = Date.now();
    await podman(['stop', '--time', String(this.grace), this.name], (this.grace + 30) * 1000);
    return { seconds: (Date.now() - started) / 1000, exitCode: (await this.state()).exitCode };
  }

  /** As when a node dies: SIGKILL, no grace. */
  async kill(): Promise<void> {
    this.stopping = true;
    this.ready = false;
    this.stopProbing();
    await podman(['kill', '--signal', 'KILL', this.name]);
  }

  async logs(lines = 40): Promise<string> {
    const result = await podman(['logs', '--tail', String(lines), this.name]);
    return `${result.stdout}${result.stderr}`;
  }

  dispose(): void {
    this.stopping = true;
    this.stopProbing();
    if (this.volumeDir) rmSync(this.volumeDir, { recursive: true, force: true });
    this.volumeDir = undefined;
  }
}

/**
 * An API server for the pods, as the kubelet wires one in: KUBERNETES_SERVICE_HOST/PORT in every
 * container, and the pod's ServiceAccount token, CA and namespace mounted at
 * /var/run/secrets/kubernetes.io/serviceaccount unless automountServiceAccountToken is false.
 */
export interface KubernetesApi {
  host: string;
  port: number;
  /** Holds <serviceAccountName>/{token,ca.crt,namespace} for each ServiceAccount the pods use. */
  serviceAccountDir: string;
}

export interface PodClusterOptions {
  kubernetes?: KubernetesApi;
  namespace: string;
  /** Unique per test file: container names start with it. */
  runId: string;
  /** Which workloads to run (default: every Deployment). */
  include?: (object: K8sObject) => boolean;
}

/** The Deployments, Services, Secrets and ConfigMaps of a render, as containers and proxies on this host. */
export class PodCluster {
  readonly pods: Pod[] = [];
  readonly services = new Map<string, ServiceProxy>();
  readonly secrets = new Map<string, Record<string, string>>();
  readonly configMaps = new Map<string, Record<string, string>>();

  private constructor(
    readonly objects: K8sObject[],
    readonly namespace: string,
    readonly runId: string,
    readonly kubernetes?: KubernetesApi,
  ) {}

  dnsNames(service: string): string[] {
    const ns = this.namespace;
    return [service, `${service}.${ns}`, `${service}.${ns}.svc`, `${service}.${ns}.svc.cluster.local`];
  }

  /** Creates the Services and pods and starts every container (all at once, as a fresh install does). */
  static async start(objects: K8sObject[], options: PodClusterOptions): Promise<PodCluster> {
    const cluster = new PodCluster(objects, options.namespace, options.runId, options.kubernetes);
    try {
      await cluster.create(options);
    } catch (error) {
      await cluster.teardown();
      throw error;
    }
    return cluster;
  }

  private async create(options: PodClusterOptions): Promise<void> {
    for (const object of this.objects) {
      if (object.kind === 'Secret') this.secrets.set(object.metadata.name, decodeSecret(object));
      if (object.kind === 'ConfigMap') this.configMaps.set(object.metadata.name, decodeConfigMap(object));
    }
    for (const object of this.objects) {
      if (object.kind !== 'Service') continue;
      const proxy = new ServiceProxy(object, this);
      await proxy.listen();
      this.services.set(object.metadata.name, proxy);
    }
    const include = options.include ?? ((o: K8sObject) => o.kind === 'Deployment');
    for (const object of this.objects) {
      if (!include(object)) continue;
      if (object.kind !== 'Deployment') throw new Error(`only Deployments are run, not ${object.kind} ${object.metadata.name}`);
      const spec = object.spec as { replicas?: number; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
      const replicas = spec.replicas ?? 1;
      for (let i = 0; i < replicas; i++) {
        for (const container of spec.template.spec.containers) {
          const name = `${options.runId}-${object.metadata.name}-${i}${spec.template.spec.containers.length > 1 ? `-${container.name}` : ''}`;
          const pod = new Pod(name, object, spec.template.spec, container, spec.template.metadata.labels, this);
          await pod.allocatePorts();
          this.pods.push(pod);
        }
      }
    }
    // Every start settled before a failure is thrown: teardown must not run while a `podman run` is still creating its container.
    const failed = (await Promise.allSettled(this.pods.map((pod) => pod.start()))).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  service(name: string): ServiceProxy {
    const found = [...this.services.values()].find((s) => s.name === name || s.name.endsWith(`-${name}`));
    if (!found) throw new Error(`no Service ${name}`);
    return found;
  }

  /** 127.0.0.1 port of a Service's (first) port. */
  servicePort(name: string, port?: number): number {
    const service = this.service(name);
    const hostPort = service.hostPort(port ?? service.ports[0]!.port);
    if (hostPort === undefined) throw new Error(`Service ${name} has no port ${port}`);
    return hostPort;
  }

  podsOf(component: string): Pod[] {
    return this.pods.filter((pod) => pod.component === component);
  }

  /** What a failure message needs: each pod's state, last probe results and log tail. */
  async describe(): Promise<string> {
    const parts: string[] = [];
    for (const pod of this.pods) {
      const last = pod.events.slice(-3).map((e) => `${e.kind} ${e.ok ? 'ok' : 'FAIL'} ${e.detail}`).join('; ');
      parts.push(`--- ${pod.name}: ready=${pod.ready} restarts=${pod.restarts} exits=[${pod.exits.join(', ')}] probes: ${last}\n${await pod.logs(15)}`);
    }
    return parts.join('\n');
  }

  /** Stops probing, removes every container and its volumes' files and closes the Service proxies. */
  async teardown(): Promise<void> {
    for (const pod of this.pods) pod.dispose();
    await removeContainers(this.pods.map((pod) => pod.name));
    await Promise.all([...this.services.values()].map((s) => s.close()));
  }
}
