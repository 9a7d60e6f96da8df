// The Helm chart without helm: values.yaml against values.schema.json (and wrong values rejected
// with readable messages), a static scan of the templates against values.yaml, then renders with the
// Go-template emulation (scripts/src/deploy/gotemplate.ts) for several value sets, every rendered
// object validated against the Kubernetes schemas.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasPath, templateProblems, unusedLeaves, valuesReferences } from '../../src/deploy/chart-static.js';
import { formatSchemaErrors, loadYamlFile, mergeValues, renderChart, validateValues, ValuesSchemaError, type RenderResult, type Values } from '../../src/deploy/helm-render.js';
import { describe as describeObject, validateObjects, type K8sObject } from '../../src/deploy/k8s-validate.js';
import { chartDir, crdPath, parseYamlFile, rel, repoRoot } from '../../src/deploy/repo.js';

const fixtures = join(repoRoot, 'scripts', 'test', 'deploy', 'fixtures');
const defaults = loadYamlFile(join(chartDir, 'values.yaml')) as Values;

/** The value sets every render check runs over: name -> override files. */
const valueSets: Record<string, string[]> = {
  defaults: [],
  dev: [join(chartDir, 'values-dev.yaml')],
  ...Object.fromEntries(readdirSync(join(chartDir, 'ci')).map((f) => [`ci/${f}`, [join(chartDir, 'ci', f)]])),
  ...Object.fromEntries(readdirSync(fixtures).filter((f) => f.startsWith('values-')).map((f) => [f, [join(fixtures, f)]])),
};

const renders = new Map<string, RenderResult>();
function render(name: string): RenderResult {
  let result = renders.get(name);
  if (!result) {
    const files = valueSets[name] ?? [];
    result = renderChart(chartDir, { releaseName: 'socketbridge', namespace: 'realtime', values: files.map((f) => (loadYamlFile(f) ?? {}) as Values) });
    renders.set(name, result);
  }
  return result;
}

function find(result: RenderResult, kind: string, nameSuffix: string): K8sObject | undefined {
  return result.objects.find((o) => o.kind === kind && String((o as K8sObject).metadata?.name).endsWith(nameSuffix)) as K8sObject | undefined;
}

function schemaMessage(values: Values): string {
  const errors = validateValues(chartDir, values);
  return errors.length ? formatSchemaErrors(errors) : '';
}

describe('values.yaml and values.schema.json', () => {
  it('values.yaml, values-dev.yaml and every ci/ and fixture value set validate against the schema', () => {
    const bad = Object.entries(valueSets)
      .map(([name, files]) => [name, schemaMessage(files.reduce<Values>((acc, f) => mergeValues(acc, (loadYamlFile(f) ?? {}) as Values), defaults))] as const)
      .filter(([, message]) => message);
    expect(bad).toEqual([]);
  });

  const wrong: { why: string; values: Values; message: RegExp }[] = [
    { why: 'a port out of range', values: { worker: { port: 70000 } }, message: /worker\.port: must be <= 65535/ },
    { why: 'a port as a string', values: { publisher: { port: '3000' } }, message: /publisher\.port: must be integer/ },
    { why: 'a misspelt key', values: { worker: { replicaCount: 3 } }, message: /worker: unknown key "replicaCount"/ },
    { why: 'an unknown top-level key', values: { workers: {} }, message: /\(root\): unknown key "workers"/ },
    { why: 'an auth key shorter than 32 characters', values: { auth: { authKey: 'too-short' } }, message: /auth\.authKey: must match pattern/ },
    { why: 'an API key shorter than 16 characters', values: { auth: { apiKey: 'short' } }, message: /auth\.apiKey: must match pattern/ },
    { why: 'an unknown log level', values: { logLevel: 'verbose' }, message: /logLevel: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent"/ },
    { why: 'a RabbitMQ URL that is not amqp', values: { rabbitmq: { url: 'http://rabbitmq:15672' } }, message: /rabbitmq\.url: must match pattern/ },
    { why: 'a RabbitMQ node list with an entry that is not a URL', values: { rabbitmq: { url: 'amqp://rabbitmq-0:5672,rabbitmq-1:5672' } }, message: /rabbitmq\.url: must match pattern/ },
    { why: 'a RabbitMQ connect timeout under 100 ms', values: { rabbitmq: { connectTimeoutMs: 10 } }, message: /rabbitmq\.connectTimeoutMs: must be >= 100/ },
    { why: 'zero brokers', values: { broker: { replicas: 0 } }, message: /broker\.replicas: must be >= 1/ },
    { why: 'a CPU target over 100%', values: { worker: { autoscaling: { targetCPUUtilizationPercentage: 150 } } }, message: /worker\.autoscaling\.targetCPUUtilizationPercentage: must be <= 100/ },
    { why: 'a service type that does not exist', values: { publisher: { service: { type: 'Ingress' } } }, message: /publisher\.service\.type: must be one of "ClusterIP", "NodePort", "LoadBalancer"/ },
    { why: 'extraEnv as a map', values: { worker: { extraEnv: { FOO: 'bar' } } }, message: /worker\.extraEnv: must be array/ },
    { why: 'extraEnv with a number value', values: { worker: { extraEnv: [{ name: 'FOO', value: 1 }] } }, message: /worker\.extraEnv\.0\.value: must be string/ },
    { why: 'a bad resource quantity', values: { state: { resources: { limits: { memory: 'lots' } } } }, message: /state\.resources\.limits\.memory: must match pattern/ },
    { why: 'a namespace with capitals', values: { operator: { watchNamespace: 'Bridges' } }, message: /operator\.watchNamespace: must match pattern/ },
    { why: 'a bad pull policy', values: { image: { pullPolicy: 'Sometimes' } }, message: /image\.pullPolicy: must be one of "Always", "IfNotPresent", "Never"/ },
    { why: 'a TLS Sentinel URL without its master name', values: { redis: { url: 'rediss+sentinel://s1:26379' } }, message: /redis\.url: must match pattern/ },
    { why: 'a CA from a Secret and a ConfigMap at once', values: { extraCaCerts: { secretName: 'ca', configMapName: 'ca' } }, message: /extraCaCerts: must NOT be valid/ },
  ];
  it('accepts every Redis URL form the services read (docs/configuration.md), the Sentinel query included', () => {
    for (const url of [
      'redis://:pw@redis:6379/2',
      'rediss://redis.example:6380',
      'redis+sentinel://:pw@s0:26379,s1:26379,s2:26379/mymaster',
      'redis+sentinel://s0,s1/mymaster/3/',
      'rediss+sentinel://:pw@s0:26379/mymaster/1?sentinelPassword=s%2Fp%40ss',
      'redis+sentinel://s0/mymaster?sentinelUsername=watch&sentinelPassword=pw',
      'redis+cluster://:pw@n0:6379,n1:6379',
    ]) {
      expect(schemaMessage(mergeValues(defaults, { redis: { url } })), url).toBe('');
    }
  });

  for (const { why, values, message } of wrong) {
    it(`rejects ${why}, naming the value`, () => {
      expect(schemaMessage(mergeValues(defaults, values))).toMatch(message);
      // The renderer refuses them too, as helm does before rendering.
      expect(() => renderChart(chartDir, { values: [values] })).toThrow(ValuesSchemaError);
    });
  }
});

describe('values the schema cannot judge alone', () => {
  const cases: { why: string; values: Values; message: RegExp }[] = [
    { why: 'more minimum than maximum workers', values: { worker: { autoscaling: { minReplicas: 5, maxReplicas: 3 } } }, message: /minReplicas must not exceed/ },
    { why: 'a broker grace period shorter than its drain', values: { broker: { drainTimeoutMs: 60000 } }, message: /broker\.terminationGracePeriodSeconds must be at least/ },
    { why: 'a publisher grace period shorter than its shutdown', values: { publisher: { shutdownTimeoutMs: 60000 } }, message: /publisher\.terminationGracePeriodSeconds must be at least/ },
    { why: 'a stream default queue with a single active consumer', values: { publisher: { queueType: 'stream' } }, message: /publisher\.queueType stream needs publisher\.singleActiveConsumer false/ },
    { why: 'no RabbitMQ URL and no existing Secret', values: { rabbitmq: { url: '' } }, message: /rabbitmq\.url or rabbitmq\.existingSecret is required/ },
  ];
  for (const { why, values, message } of cases) {
    it(`the render fails on ${why}, saying why`, () => {
      expect(schemaMessage(mergeValues(defaults, values))).toBe('');
      expect(() => renderChart(chartDir, { values: [values] })).toThrow(message);
    });
  }
});

describe('templates, statically', () => {
  it('every template parses: blocks closed, each include names a defined template', () => {
    expect(templateProblems(chartDir)).toEqual([]);
  });

  it('every .Values path a template names exists in values.yaml', () => {
    const refs = valuesReferences(chartDir);
    expect(refs.length).toBeGreaterThan(50);
    const missing = refs.filter((r) => !hasPath(defaults, r.path)).map((r) => `${r.file}:${r.line}: .Values.${r.path}`);
    expect(missing).toEqual([]);
  });

  it('every leaf value in values.yaml is used by some template', () => {
    expect(unusedLeaves(chartDir)).toEqual([]);
  });

  it('Chart.yaml is a v2 application chart whose appVersion is the repository version', () => {
    const chart = loadYamlFile(join(chartDir, 'Chart.yaml')) as Record<string, string>;
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    expect(chart.apiVersion).toBe('v2');
    expect(chart.type).toBe('application');
    expect(chart.name).toBe('socketbridge');
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
    expect(chart.appVersion).toBe(pkg.version);
  });

  it('the dashboards are valid Grafana JSON with DNS-safe file names', () => {
    const dir = join(chartDir, 'dashboards');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files).toContain('overview.json');
    for (const file of files) {
      expect(file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.json$/);
      const dashboard = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { uid?: string; title?: string; panels?: { targets?: { expr?: string }[] }[] };
      expect(dashboard.uid, file).toBeTruthy();
      expect(dashboard.title, file).toBeTruthy();
      expect(dashboard.panels?.length, file).toBeGreaterThan(0);
      const exprs = (dashboard.panels ?? []).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
      expect(exprs.every((e) => /socketbridge_/.test(e)), `${file}: every query reads a socketbridge_ metric`).toBe(true);
    }
  });
});

describe('rendered', () => {
  const crd = existsSync(crdPath) ? (parseYamlFile(crdPath).docs[0] as K8sObject) : null;

  it('every value set renders, and every object validates against the Kubernetes schemas with no unknown field', async () => {
    const all = Object.keys(valueSets).flatMap((name) => {
      const result = render(name);
      expect(result.objects.length, name).toBeGreaterThan(10);
      return result.objects.map((object) => ({ source: `chart (${name})`, object: object as K8sObject }));
    });
    expect(await validateObjects(all, crd)).toEqual([]);
  });

  it('object names are unique per kind and namespace, and valid DNS names', () => {
    for (const name of Object.keys(valueSets)) {
      const result = render(name);
      const keys = result.objects.map((o) => `${String(o.kind)}/${String((o as K8sObject).metadata?.namespace ?? '')}/${String((o as K8sObject).metadata?.name)}`);
      expect(keys.length, name).toBe(new Set(keys).size);
      for (const o of result.objects as K8sObject[]) expect(String(o.metadata?.name), `${name}: ${describeObject(o)}`).toMatch(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/);
    }
  });

  it('defaults: state, brokers, workers with an HPA (and no fixed replicas), publisher, operator with RBAC, PDBs, a Secret, the test hook', () => {
    const r = render('defaults');
    const names = r.objects.map((o) => `${String(o.kind)}/${String((o as K8sObject).metadata?.name)}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'Deployment/socketbridge-state',
        'Service/socketbridge-state',
        'Deployment/socketbridge-broker',
        'Service/socketbridge-broker',
        'PodDisruptionBudget/socketbridge-broker',
        'Deployment/socketbridge-worker',
        'Service/socketbridge-worker',
        'HorizontalPodAutoscaler/socketbridge-worker',
        'PodDisruptionBudget/socketbridge-worker',
        'Deployment/socketbridge-publisher',
        'Service/socketbridge-publisher',
        'PodDisruptionBudget/socketbridge-publisher',
        'Deployment/socketbridge-operator',
        'ServiceAccount/socketbridge-operator',
        'ClusterRole/socketbridge-operator',
        'ClusterRoleBinding/socketbridge-operator',
        'Role/socketbridge-operator-leader-election',
        'RoleBinding/socketbridge-operator-leader-election',
        'Secret/socketbridge',
        'Pod/socketbridge-test-connection',
      ]),
    );
    expect(names.some((n) => n.startsWith('Ingress/') || n.startsWith('ServiceMonitor/') || n.startsWith('ConfigMap/'))).toBe(false);
    const worker = find(r, 'Deployment', '-worker') as { spec: { replicas?: number } };
    expect(worker.spec.replicas).toBeUndefined();
    const state = find(r, 'Deployment', '-state') as { spec: { replicas: number; strategy: { type: string } } };
    expect(state.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
    const stateService = find(r, 'Service', '-state') as { spec: { publishNotReadyAddresses?: boolean } };
    expect(stateService.spec.publishNotReadyAddresses).toBe(true);
    const operator = find(r, 'Deployment', '-operator') as { spec: { replicas: number } };
    expect(operator.spec.replicas).toBe(2);
    // Two publishers: one at a time consumes the default queue, so each channel keeps the queue's order.
    const publisher = find(r, 'Deployment', '-publisher') as {
      spec: { replicas: number; template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } };
    };
    expect(publisher.spec.replicas).toBe(2);
    expect(publisher.spec.template.spec.containers[0]!.env).toContainEqual({ name: 'SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER', value: 'true' });
    expect(r.notes).toMatch(/helm test socketbridge -n realtime/);
  });

  it('the Secret holds every key, generated where not given, long enough for the services', () => {
    const secret = find(render('defaults'), 'Secret', 'socketbridge') as { data: Record<string, string> };
    const decoded = Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    expect(Object.keys(decoded).sort()).toEqual(['api-key', 'auth-key', 'ops-key', 'rabbitmq-url', 'redis-url', 'scc-auth-key']);
    expect(decoded['ops-key']!.length).toBeGreaterThanOrEqual(16);
    expect(decoded['auth-key']!.length).toBeGreaterThanOrEqual(32);
    expect(decoded['api-key']!.length).toBeGreaterThanOrEqual(16);
    expect(decoded['scc-auth-key']!.length).toBeGreaterThanOrEqual(16);
    expect(decoded['rabbitmq-url']).toBe(defaults.rabbitmq && (defaults.rabbitmq as Values).url);
    // Given keys are used as they are.
    const given = find(render('dev'), 'Secret', 'socketbridge') as { data: Record<string, string> };
    const dev = loadYamlFile(join(chartDir, 'values-dev.yaml')) as { auth: Record<string, string> };
    expect(Buffer.from(given.data['auth-key']!, 'base64').toString()).toBe(dev.auth.authKey);
    // The template reads the previous Secret back (lookup), so upgrades keep generated keys.
    const template = readFileSync(join(chartDir, 'templates', 'secret.yaml'), 'utf8');
    expect(template).toMatch(/lookup "v1" "Secret" \.Release\.Namespace \$name/);
    expect(template).toMatch(/randAlphaNum/);
  });

  it('existing Secrets: the chart writes none and every reference names them', () => {
    const r = render('values-existing-secrets.yaml');
    expect(r.objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const refs = JSON.stringify(r.objects).match(/"secretKeyRef":\{[^}]*\}/g) ?? [];
    expect(refs.length).toBeGreaterThan(5);
    for (const ref of refs) expect(ref).toMatch(/"name":"(socketbridge-keys|rabbitmq-credentials|redis-credentials)"/);
    expect(refs.filter((r) => r.includes('redis-credentials')).every((r) => r.includes('"key":"uri"'))).toBe(true);
  });

  it('everything on: Ingress with WebSocket timeouts, ServiceMonitor, dashboards, one watched namespace with a Role, pass-through values', () => {
    const r = render('values-everything.yaml');
    const ingress = find(r, 'Ingress', 'sb-worker') as { metadata: { annotations: Record<string, string> }; spec: { rules: { host: string }[]; tls: unknown[] } };
    expect(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']).toBe('3600');
    expect(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-send-timeout']).toBe('3600');
    expect(ingress.spec.rules[0]!.host).toBe('ws.example.com');
    const monitor = find(r, 'ServiceMonitor', 'sb') as { metadata: { labels: Record<string, string> }; spec: { endpoints: { port: string }[] } };
    expect(monitor.metadata.labels.release).toBe('prometheus');
    const monitored = r.objects.filter((o) => o.kind === 'Service' && (o as K8sObject & { metadata: { labels: Record<string, string> } }).metadata.labels['socketbridge.io/metrics'] === 'true');
    expect(monitored.length).toBe(5);
    for (const service of monitored as { spec: { ports: { name: string }[] } }[]) expect(service.spec.ports.map((p) => p.name)).toContain(monitor.spec.endpoints[0]!.port);
    const dashboards = r.objects.filter((o) => o.kind === 'ConfigMap') as { metadata: { namespace: string; labels: Record<string, string> }; data: Record<string, string> }[];
    expect(dashboards.length).toBe(readdirSync(join(chartDir, 'dashboards')).filter((f) => f.endsWith('.json')).length);
    for (const cm of dashboards) {
      expect(cm.metadata.labels.grafana_dashboard).toBe('1');
      expect(cm.metadata.namespace).toBe('monitoring');
      for (const json of Object.values(cm.data)) expect(() => JSON.parse(json)).not.toThrow();
    }
    expect(r.objects.some((o) => o.kind === 'ClusterRole')).toBe(false);
    const role = r.objects.find((o) => o.kind === 'Role' && (o as K8sObject).metadata?.namespace === 'bridges');
    expect(role).toBeDefined();
    expect(find(r, 'HorizontalPodAutoscaler', '-worker')).toBeUndefined();
    expect((find(r, 'Deployment', 'sb-worker') as { spec: { replicas: number } }).spec.replicas).toBe(4);
    // Lifecycle events: the workers publish to the chart's RabbitMQ (its Secret), on the exchange named.
    const workerEnv = JSON.stringify(find(r, 'Deployment', 'sb-worker'));
    expect(workerEnv).toMatch(/"name":"SOCKETBRIDGE_EVENTS_RABBITMQ_URL","valueFrom":\{"secretKeyRef":\{"name":"[^"]+","key":"rabbitmq-url"\}\}/);
    expect(workerEnv).toMatch(/"name":"SOCKETBRIDGE_EVENTS_EXCHANGE","value":"backend.socket-events"/);
    expect(workerEnv).toContain('{"name":"SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS","value":"2000"}');
    expect(JSON.stringify(find(render('defaults'), 'Deployment', '-worker'))).not.toMatch(/SOCKETBRIDGE_EVENTS_RABBITMQ_URL/);
    expect(JSON.stringify(find(r, 'Deployment', 'sb-operator'))).toMatch(/"serviceAccountName":"bridge-operator"/);
    expect(r.notes).toMatch(/wss:\/\/ws\.example\.com\/socketcluster\//);
    expect(r.notes).toMatch(/WARNING: publisher\.testMode is on/);
    // A RabbitMQ cluster's node list reaches the publisher whole, with its per-node connect timeout.
    const secret = find(r, 'Secret', 'sb') as { data: Record<string, string> };
    expect(Buffer.from(secret.data['rabbitmq-url']!, 'base64').toString().split(',')).toHaveLength(3);
    expect(JSON.stringify(find(r, 'Deployment', 'sb-publisher'))).toContain('{"name":"SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS","value":"2000"}');
  });

  it('extraCaCerts: the CA key alone mounted read-only in the publisher, worker and operator pods, named by NODE_EXTRA_CA_CERTS; nothing without it', () => {
    type Pod = { spec: { template: { spec: { volumes: Array<Record<string, unknown>>; containers: Array<{ env: Array<{ name: string; value?: string }>; volumeMounts: Array<Record<string, unknown>> }> } } } };
    const fromSecret = render('values-everything.yaml');
    const fromConfigMap = renderChart(chartDir, { releaseName: 'socketbridge', namespace: 'realtime', values: [{ extraCaCerts: { configMapName: 'trust-bundle', key: 'bundle.pem' } }] });
    for (const [result, prefix, source, key] of [
      [fromSecret, 'sb', { secret: { secretName: 'redis-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }, 'ca.crt'],
      [fromConfigMap, 'socketbridge', { configMap: { name: 'trust-bundle', items: [{ key: 'bundle.pem', path: 'bundle.pem' }] } }, 'bundle.pem'],
    ] as const) {
      for (const component of ['publisher', 'worker', 'operator']) {
        const pod = (find(result, 'Deployment', `${prefix}-${component}`) as Pod).spec.template.spec;
        expect(pod.volumes, component).toContainEqual({ name: 'extra-ca', ...source });
        expect(pod.containers[0]!.volumeMounts, component).toContainEqual({ name: 'extra-ca', mountPath: '/etc/socketbridge/ca', readOnly: true });
        expect(pod.containers[0]!.env, component).toContainEqual({ name: 'NODE_EXTRA_CA_CERTS', value: `/etc/socketbridge/ca/${key}` });
      }
      for (const component of ['broker', 'state']) expect(JSON.stringify(find(result, 'Deployment', `${prefix}-${component}`)), component).not.toMatch(/extra-ca|NODE_EXTRA_CA_CERTS/);
    }
    expect(JSON.stringify(render('defaults').objects)).not.toMatch(/extra-ca|NODE_EXTRA_CA_CERTS/);
  });

  it('operator off: no operator, ServiceAccount or RBAC', () => {
    const r = render('values-no-operator.yaml');
    expect(r.objects.filter((o) => /operator/.test(String((o as K8sObject).metadata?.name)))).toEqual([]);
  });

  it('the operator may do exactly what it needs (least privilege)', () => {
    const role = find(render('defaults'), 'ClusterRole', '-operator') as { rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] };
    const grants = role.rules.flatMap((rule) => rule.resources.map((res) => `${rule.apiGroups.join(',')}/${res}: ${[...rule.verbs].sort().join(',')}`)).sort();
    expect(grants).toEqual([
      '/events: create,patch',
      '/secrets: get',
      'socketbridge.io/socketbridges/status: patch',
      'socketbridge.io/socketbridges: list,patch,watch',
    ]);
    const leases = find(render('defaults'), 'Role', '-operator-leader-election') as { rules: { resources: string[]; verbs: string[]; resourceNames?: string[] }[] };
    expect(leases.rules.flatMap((r) => r.verbs).sort()).toEqual(['create', 'get', 'update']);
    expect(leases.rules.find((r) => r.verbs.includes('update'))?.resourceNames).toEqual(['socketbridge-operator']);
  });

  it('the helm test hook runs the test client from the same image, with the publisher, worker and API key', () => {
    const pod = find(render('defaults'), 'Pod', '-test-connection') as { metadata: { annotations: Record<string, string> }; spec: { restartPolicy: string; containers: { image: string; args: string[]; env: { name: string; value?: string }[] }[] } };
    expect(pod.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(pod.spec.restartPolicy).toBe('Never');
    const container = pod.spec.containers[0]!;
    expect(container.image).toBe('socketbridge:0.1.0');
    expect(container.args).toEqual(['node', 'scripts/dist/deploy/helm-test-client.js']);
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value ?? '(from a Secret)']));
    expect(env).toEqual({
      PUBLISHER_URL: 'http://socketbridge-publisher:3000',
      WORKER_URL: 'ws://socketbridge-worker:8000/socketcluster/',
      API_KEY: '(from a Secret)',
      TIMEOUT_SECONDS: '60',
    });
  });

  it('names follow the release: another release name prefixes every object', () => {
    const r = renderChart(chartDir, { releaseName: 'ws', namespace: 'x' });
    for (const o of r.objects as K8sObject[]) expect(String(o.metadata?.name)).toMatch(/^ws-socketbridge/);
    expect(rel(chartDir)).toBe('charts/socketbridge');
  });
});
