// What the chart and the manifests give each service is what the service reads: env variable names
// (from the services' own config schemas, imported from their builds), required secrets, ports,
// probe paths, the state server's address, and a termination grace period longer than each
// service's own SIGTERM drain.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { helmTestEnv } from '../../src/deploy/helm-test-client.js';
import { loadYamlFile, renderChart, type Values } from '../../src/deploy/helm-render.js';
import type { K8sObject } from '../../src/deploy/k8s-validate.js';
import {
  chartDir,
  isK8sObject,
  literalEnv,
  loadOperatorSchema,
  loadServiceSchema,
  manifestObjectFiles,
  parseYamlFile,
  portVariables,
  rel,
  repoRoot,
  serviceSchemas,
  shutdownBoundMs,
  workloads,
  type ServiceName,
  type ServiceSchema,
  type Workload,
} from '../../src/deploy/repo.js';

/** Seconds a pod's grace period must exceed its service's own shutdown bound by. */
const GRACE_MARGIN_MS = 5000;
const CLUSTER_MEMBERS: ServiceName[] = ['broker', 'worker', 'publisher'];
const SERVICES: ServiceName[] = ['state', 'broker', 'worker', 'publisher', 'operator'];
/** Variables Node itself reads, not a service's config: the chart sets them where the service needs them. */
const NODE_ENV = ['NODE_EXTRA_CA_CERTS'];

const fixtures = join(repoRoot, 'scripts', 'test', 'deploy', 'fixtures');
const valueFiles: Record<string, string[]> = {
  defaults: [],
  dev: [join(chartDir, 'values-dev.yaml')],
  ...Object.fromEntries(readdirSync(join(chartDir, 'ci')).map((f) => [`ci/${f}`, [join(chartDir, 'ci', f)]])),
  ...Object.fromEntries(readdirSync(fixtures).filter((f) => f.startsWith('values-')).map((f) => [f, [join(fixtures, f)]])),
};

interface Deployment {
  name: string;
  objects: { source: string; object: K8sObject }[];
}

const deployments: Deployment[] = [
  ...Object.entries(valueFiles).map(([name, files]) => {
    const result = renderChart(chartDir, { releaseName: 'socketbridge', namespace: 'realtime', values: files.map((f) => (loadYamlFile(f) ?? {}) as Values) });
    return { name: `chart (${name})`, objects: result.objects.map((object) => ({ source: `chart (${name})`, object: object as K8sObject })) };
  }),
  {
    name: 'manifests/base',
    objects: manifestObjectFiles()
      .filter((p) => rel(p).startsWith('manifests/base/'))
      .flatMap((path) => parseYamlFile(path).docs.filter(isK8sObject).map((object) => ({ source: rel(path), object }))),
  },
];

const schemas = new Map<ServiceName, ServiceSchema>();
let operatorSchemaFound = false;

beforeAll(async () => {
  for (const { service, dist, exportName } of serviceSchemas) schemas.set(service, await loadServiceSchema(join(repoRoot, dist), exportName));
  const operator = await loadOperatorSchema();
  operatorSchemaFound = operator !== null;
  if (operator) schemas.set('operator', operator);
});

function envNames(w: Workload): string[] {
  return (w.container.env ?? []).map((e) => e.name);
}

function each(check: (w: Workload, deployment: string) => string[]): string[] {
  const problems: string[] = [];
  for (const d of deployments) {
    for (const w of workloads(d.objects)) {
      problems.push(...check(w, d.name).map((p) => `${w.source}: ${String(w.object.kind)} ${String(w.object.metadata?.name)} (${w.service ?? 'unknown'}): ${p}`));
    }
  }
  return problems;
}

describe('every deployment', () => {
  it('runs each of state, broker, worker, publisher, operator once, by entry point', () => {
    for (const d of deployments) {
      const services = workloads(d.objects).map((w) => w.service);
      expect(services.filter((s) => s === null), `${d.name}: a container with no known entry point`).toEqual([]);
      const expected = d.name.includes('no-operator') ? SERVICES.filter((s) => s !== 'operator') : SERVICES;
      for (const service of expected) expect(services.filter((s) => s === service).length, `${d.name}: ${service}`).toBe(1);
    }
  });
});

describe('the services\' config schemas (services/*/dist/config.js)', () => {
  it('load, with the required secrets the deployment must provide', () => {
    // SCC_AUTH_KEY (joins the cluster) and SOCKETBRIDGE_OPS_KEY (opens /metrics, /cluster, /state) everywhere.
    expect(schemas.get('publisher')!.required.sort()).toEqual(['SCC_AUTH_KEY', 'SOCKETBRIDGE_API_KEY', 'SOCKETBRIDGE_AUTH_KEY', 'SOCKETBRIDGE_OPS_KEY']);
    expect(schemas.get('worker')!.required.sort()).toEqual(['SCC_AUTH_KEY', 'SOCKETBRIDGE_AUTH_KEY', 'SOCKETBRIDGE_OPS_KEY']);
    expect(schemas.get('state')!.required.sort()).toEqual(['SCC_AUTH_KEY', 'SOCKETBRIDGE_OPS_KEY']);
    expect(schemas.get('broker')!.required.sort()).toEqual(['SCC_AUTH_KEY', 'SOCKETBRIDGE_OPS_KEY']);
  });

  it('the operator\'s variables are checked too when operator/dist/config.js exists', () => {
    // Written alongside this work: when its build is absent the operator's env is left unchecked.
    if (!operatorSchemaFound) console.warn('operator/dist/config.js (loadOperatorConfig) not found: the operator\'s env is not checked');
    expect(operatorSchemaFound ? schemas.get('operator')!.names : []).toEqual(operatorSchemaFound ? expect.arrayContaining(['SOCKETBRIDGE_REDIS_URL', 'POD_NAMESPACE']) : []);
  });
});

describe('env', () => {
  it('every variable set for a container is one its service reads', () => {
    expect(
      each((w) => {
        if (w.service === 'helm-test') return envNames(w).filter((n) => !(helmTestEnv as readonly string[]).includes(n)).map((n) => `${n}: the helm test client does not read it`);
        const schema = schemas.get(w.service!);
        if (!schema) return [];
        return envNames(w).filter((n) => !schema.names.includes(n) && !NODE_ENV.includes(n)).map((n) => `${n}: the ${w.service} does not read it`);
      }),
    ).toEqual([]);
  });

  it('NODE_EXTRA_CA_CERTS names a file in a volume mounted in the same container, and only where Redis or RabbitMQ is reached', () => {
    expect(
      each((w) => {
        const file = literalEnv(w.container).NODE_EXTRA_CA_CERTS;
        if (file === undefined) return [];
        const problems = w.service === 'worker' || w.service === 'publisher' || w.service === 'operator' ? [] : [`the ${w.service} connects to neither Redis nor RabbitMQ`];
        const mounts = (w.container as { volumeMounts?: Array<{ name: string; mountPath: string }> }).volumeMounts ?? [];
        const mount = mounts.find((m) => file.startsWith(`${m.mountPath}/`));
        if (!mount) return [...problems, `NODE_EXTRA_CA_CERTS=${file} is in no mounted volume`];
        const volumes = ((w.object as { spec?: { template?: { spec?: { volumes?: Array<Record<string, unknown> & { name: string }> } } } }).spec?.template?.spec?.volumes ?? []);
        const volume = volumes.find((v) => v.name === mount.name) as { secret?: { items?: Array<{ path: string }> }; configMap?: { items?: Array<{ path: string }> } } | undefined;
        const items = volume?.secret?.items ?? volume?.configMap?.items ?? [];
        if (!items.some((item) => `${mount.mountPath}/${item.path}` === file)) problems.push(`the volume ${mount.name} does not hold ${file}`);
        return problems;
      }),
    ).toEqual([]);
  });

  it('no variable is set twice in one container', () => {
    expect(each((w) => envNames(w).filter((n, i, all) => all.indexOf(n) !== i).map((n) => `${n} is set twice`))).toEqual([]);
  });

  it('the required secrets are set: SOCKETBRIDGE_AUTH_KEY and SOCKETBRIDGE_API_KEY for the publisher, SOCKETBRIDGE_AUTH_KEY for the workers, from a Secret', () => {
    expect(
      each((w) => {
        const schema = w.service ? schemas.get(w.service) : undefined;
        if (!schema) return [];
        return schema.required.flatMap((name) => {
          const env = w.container.env?.find((e) => e.name === name);
          if (!env) return [`${name} is required and not set`];
          return env.valueFrom?.secretKeyRef ? [] : [`${name} should come from a Secret, not a literal`];
        });
      }),
    ).toEqual([]);
    // The helm test client reads its three variables.
    expect(each((w) => (w.service === 'helm-test' ? helmTestEnv.filter((n) => !envNames(w).includes(n)).map((n) => `${n} is not set`) : []))).toEqual([]);
  });

  it('every literal value passes the service\'s own validation (it would refuse to start otherwise)', () => {
    expect(
      each((w) => {
        const schema = w.service ? schemas.get(w.service) : undefined;
        if (!schema) return [];
        return Object.entries(literalEnv(w.container))
          .filter(([name, value]) => schema.names.includes(name) && !schema.accepts(name, value))
          .map(([name, value]) => `${name}=${JSON.stringify(value)} is refused by the ${w.service}`);
      }),
    ).toEqual([]);
  });

  it('cluster members announce their pod IP (SCC_INSTANCE_IP from status.podIP) and find the state server by its Service', () => {
    expect(
      each((w, deployment) => {
        if (!CLUSTER_MEMBERS.includes(w.service!)) return [];
        const problems: string[] = [];
        const ip = w.container.env?.find((e) => e.name === 'SCC_INSTANCE_IP');
        if (ip?.valueFrom?.fieldRef?.fieldPath !== 'status.podIP') problems.push('SCC_INSTANCE_IP must come from status.podIP');
        const env = literalEnv(w.container);
        const host = env.SCC_STATE_SERVER_HOST;
        const port = Number(env.SCC_STATE_SERVER_PORT ?? schemas.get(w.service!)!.defaultOf('SCC_STATE_SERVER_PORT'));
        const objects = deployments.find((d) => d.name === deployment)!.objects.map((o) => o.object);
        const service = objects.find((o) => o.kind === 'Service' && o.metadata?.name === host) as { spec: { ports: { port: number }[]; selector: Record<string, string> } } | undefined;
        if (!service) problems.push(`SCC_STATE_SERVER_HOST=${String(host)} names no Service`);
        else {
          if (!service.spec.ports.some((p) => p.port === port)) problems.push(`the state Service has no port ${port}`);
          const state = workloads(deployments.find((d) => d.name === deployment)!.objects).find((x) => x.service === 'state')!;
          const labels = (state.object.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
          if (!Object.entries(service.spec.selector).every(([k, v]) => labels[k] === v)) problems.push('the state Service does not select the state pods');
        }
        return problems;
      }),
    ).toEqual([]);
  });

  it('every cluster member and the state server share one SCC_AUTH_KEY and one SOCKETBRIDGE_OPS_KEY secret, never an empty one', () => {
    for (const variable of ['SCC_AUTH_KEY', 'SOCKETBRIDGE_OPS_KEY']) {
      for (const d of deployments) {
        const members = workloads(d.objects).filter((w) => ['state', ...CLUSTER_MEMBERS].includes(w.service!));
        expect(members.length, d.name).toBe(4);
        const refs = members.map((w) => w.container.env?.find((e) => e.name === variable)?.valueFrom?.secretKeyRef ?? null);
        const distinct = new Set(refs.map((r) => JSON.stringify(r)));
        expect(distinct.size, `${d.name} ${variable}: ${[...distinct].join(' ')}`).toBe(1);
        const ref = refs[0] as { name: string; key: string } | null;
        expect(ref, `${d.name} ${variable}`).not.toBeNull();
        // Where the chart writes the Secret itself, the key is there and long enough for the services (16+).
        const secret = d.objects.map((o) => o.object).find((o) => o.kind === 'Secret' && o.metadata?.name === ref!.name) as { data?: Record<string, string> } | undefined;
        if (!secret) continue; // an existing Secret, or the kustomize base's (created by hand, docs/deploying.md)
        const value = Buffer.from(secret.data?.[ref!.key] ?? '', 'base64').toString();
        expect(value.length, `${d.name}: ${ref!.name}/${ref!.key}`).toBeGreaterThanOrEqual(16);
      }
    }
  });

  it('the ServiceMonitor sends the same ops key the members read', () => {
    for (const d of deployments) {
      const monitor = d.objects.map((o) => o.object).find((o) => o.kind === 'ServiceMonitor') as { spec: { endpoints: { authorization?: { type?: string; credentials?: unknown } }[] } } | undefined;
      if (!monitor) continue;
      const state = workloads(d.objects).find((w) => w.service === 'state')!;
      const opsRef = state.container.env?.find((e) => e.name === 'SOCKETBRIDGE_OPS_KEY')?.valueFrom?.secretKeyRef;
      for (const endpoint of monitor.spec.endpoints) {
        expect(endpoint.authorization?.type, d.name).toBe('Bearer');
        expect(endpoint.authorization?.credentials, d.name).toEqual({ name: opsRef?.name, key: opsRef?.key });
      }
    }
  });
});

describe('ports and probes', () => {
  it('each container listens where its port variable (or its default) says, on a port named http', () => {
    expect(
      each((w) => {
        if (!w.service || w.service === 'helm-test') return [];
        const schema = schemas.get(w.service);
        const variable = portVariables[w.service] ?? (w.service === 'operator' ? 'SOCKETBRIDGE_OPERATOR_PORT' : undefined);
        if (!schema || !variable) return [];
        const listening = Number(literalEnv(w.container)[variable] ?? schema.defaultOf(variable));
        const http = w.container.ports?.find((p) => p.name === 'http');
        if (!http) return ['no container port named http'];
        return http.containerPort === listening ? [] : [`containerPort ${http.containerPort} but the service listens on ${listening} (${variable})`];
      }),
    ).toEqual([]);
  });

  it('the chart\'s default ports are the services\' defaults', () => {
    const values = loadYamlFile(join(chartDir, 'values.yaml')) as Record<string, { port: number }>;
    for (const service of ['state', 'broker', 'worker', 'publisher'] as const) {
      expect(values[service]!.port, service).toBe(schemas.get(service)!.defaultOf(portVariables[service]!));
    }
    expect([values.state!.port, values.broker!.port, values.worker!.port, values.publisher!.port]).toEqual([7777, 8888, 8000, 3000]);
  });

  it('readiness asks /readyz, liveness and start-up ask /healthz, on the service\'s port', () => {
    expect(
      each((w) => {
        if (!w.service || w.service === 'helm-test') return [];
        const problems: string[] = [];
        const probes = { readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: '/healthz' } as const;
        for (const [probe, path] of Object.entries(probes)) {
          const httpGet = w.container[probe as keyof typeof probes]?.httpGet;
          if (!httpGet) problems.push(`no ${probe}`);
          else {
            if (httpGet.path !== path) problems.push(`${probe} asks ${String(httpGet.path)}, expected ${path}`);
            const port = httpGet.port;
            if (!w.container.ports?.some((p) => p.name === port || p.containerPort === port)) problems.push(`${probe} port ${String(port)} is no container port`);
          }
        }
        return problems;
      }),
    ).toEqual([]);
  });

  it('every Service reaches a named container port of the pods it selects, with the same number', () => {
    const problems: string[] = [];
    for (const d of deployments) {
      const pods = workloads(d.objects);
      for (const { source, object } of d.objects.filter((o) => o.object.kind === 'Service')) {
        const spec = object.spec as { selector: Record<string, string>; ports: { port: number; targetPort?: string | number }[] };
        const selected = pods.filter((w) => {
          const labels = (w.object.kind === 'Pod' ? (w.object.metadata as { labels?: Record<string, string> }).labels : (w.object.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels) ?? {};
          return Object.entries(spec.selector).every(([k, v]) => labels[k] === v);
        });
        if (selected.length !== 1) problems.push(`${source}: Service ${String(object.metadata?.name)} selects ${selected.length} workloads`);
        for (const port of spec.ports) {
          const target = selected[0]?.container.ports?.find((p) => p.name === port.targetPort || p.containerPort === port.targetPort);
          if (!target) problems.push(`${source}: Service ${String(object.metadata?.name)} targets ${String(port.targetPort)}, which its pods do not name`);
          else if (target.containerPort !== port.port) problems.push(`${source}: Service ${String(object.metadata?.name)} port ${port.port} -> container ${target.containerPort}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('signals and shutdown', () => {
  it('containers keep the image\'s entry point (tini as PID 1 forwards SIGTERM): args only, never command, node first', () => {
    expect(
      each((w) => {
        const problems: string[] = [];
        if (w.container.command) problems.push('sets command, which replaces tini');
        if (w.container.args?.[0] !== 'node') problems.push(`args start with ${String(w.container.args?.[0])}, expected node`);
        if (w.container.lifecycle) problems.push('a lifecycle hook: the services drain on SIGTERM themselves');
        return problems;
      }),
    ).toEqual([]);
  });

  it(`terminationGracePeriodSeconds exceeds each service's own shutdown bound by at least ${GRACE_MARGIN_MS / 1000} s (broker: drain timeout + its margin)`, () => {
    expect(
      each((w) => {
        if (!w.service || w.service === 'helm-test') return [];
        const schema = schemas.get(w.service);
        if (!schema) return [];
        const bound = shutdownBoundMs(w.service, literalEnv(w.container), schema);
        const grace = (w.podSpec.terminationGracePeriodSeconds ?? 30) * 1000;
        return grace >= bound + GRACE_MARGIN_MS ? [] : [`terminationGracePeriodSeconds ${grace / 1000} s, but the ${w.service} may take ${bound / 1000} s to shut down`];
      }),
    ).toEqual([]);
  });

  it('the broker\'s bound is its drain timeout plus the margin main.ts adds (30 s + 5 s by default)', () => {
    const broker = schemas.get('broker')!;
    expect(shutdownBoundMs('broker', {}, broker)).toBe(35_000);
    expect(shutdownBoundMs('broker', { SOCKETBRIDGE_DRAIN_TIMEOUT_MS: '60000' }, broker)).toBe(65_000);
  });
});

describe('security', () => {
  it('every pod runs as non-root with a read-only root filesystem, no privilege escalation and no capabilities (dev: writable, for live updates)', () => {
    expect(
      each((w, deployment) => {
        const problems: string[] = [];
        const pod = w.podSpec.securityContext ?? {};
        const container = w.container.securityContext ?? {};
        if (pod.runAsNonRoot !== true && container.runAsNonRoot !== true) problems.push('runAsNonRoot is not true');
        if (container.allowPrivilegeEscalation !== false) problems.push('allowPrivilegeEscalation is not false');
        if (JSON.stringify((container.capabilities as { drop?: string[] } | undefined)?.drop) !== '["ALL"]') problems.push('capabilities do not drop ALL');
        if (container.readOnlyRootFilesystem !== true && deployment !== 'chart (dev)') problems.push('the root filesystem is writable');
        if ((pod.seccompProfile as { type?: string } | undefined)?.type !== 'RuntimeDefault') problems.push('no RuntimeDefault seccomp profile');
        return problems;
      }),
    ).toEqual([]);
  });

  it('only the operator gets a service account token', () => {
    expect(each((w) => (w.service !== 'operator' && w.podSpec.automountServiceAccountToken !== false ? ['mounts a service account token'] : []))).toEqual([]);
  });

  it('multi-replica components spread over nodes (topologySpreadConstraints)', () => {
    expect(
      each((w, deployment) => {
        if (deployment !== 'chart (defaults)' && deployment !== 'manifests/base') return [];
        if (!['broker', 'worker', 'publisher', 'operator'].includes(w.service!)) return [];
        return Array.isArray(w.podSpec.topologySpreadConstraints) && w.podSpec.topologySpreadConstraints.length ? [] : ['no topologySpreadConstraints'];
      }),
    ).toEqual([]);
  });

  it('the base documents every Secret key its pods read', () => {
    const doc = readFileSync(join(repoRoot, 'manifests', 'base', 'kustomization.yaml'), 'utf8');
    const documented = new Set([...doc.matchAll(/--from-literal=([a-z-]+)=/g)].map((m) => m[1]!));
    const base = deployments.find((d) => d.name === 'manifests/base')!;
    const used = new Set(workloads(base.objects).flatMap((w) => (w.container.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.key] : []))));
    expect([...used].filter((k) => !documented.has(k))).toEqual([]);
    expect(used.size).toBeGreaterThan(3);
  });
});
