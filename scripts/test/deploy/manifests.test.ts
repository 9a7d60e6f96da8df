// Every YAML file under manifests/ and charts/ parses; the kustomize base and the dev overlay render;
// every object validates against the Kubernetes schemas (and has no unknown field); SocketBridges
// validate against the CRD; the chart's copy of the CRD is the same file.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  chartCrdPath,
  crdPath,
  isK8sObject,
  kustomize,
  manifestObjectFiles,
  parseYamlFile,
  plainYamlFiles,
  rel,
  repoRoot,
} from '../../src/deploy/repo.js';
import { renderChart } from '../../src/deploy/helm-render.js';
import { customResourceValidator, describe as describeObject, validateObjects, type K8sObject, type LabelledObject } from '../../src/deploy/k8s-validate.js';

const CRD_MISSING = `${rel(crdPath)} does not exist yet: the operator's CRD (written with the operator) is needed here`;

/** Schema problems of each object, one line per problem, prefixed by where it came from. */
function problemsOf(objects: LabelledObject[]): Promise<string[]> {
  const crd = existsSync(crdPath) ? (parseYamlFile(crdPath).docs[0] as K8sObject) : null;
  return validateObjects(objects, crd, CRD_MISSING);
}

describe('YAML files', () => {
  it('every YAML file in manifests/ and charts/ (but chart templates) parses', () => {
    const files = plainYamlFiles();
    expect(files.map(rel)).toEqual(expect.arrayContaining(['manifests/base/kustomization.yaml', 'manifests/dev/kustomization.yaml', 'charts/socketbridge/values.yaml', 'charts/socketbridge/Chart.yaml']));
    const broken = files.map(parseYamlFile).filter((f) => f.errors.length).map((f) => `${rel(f.path)}: ${f.errors.join('; ')}`);
    expect(broken).toEqual([]);
  });

  it('every document in manifests/ (kustomizations aside) is a Kubernetes object with apiVersion, kind and a name', () => {
    const bad: string[] = [];
    for (const path of manifestObjectFiles()) {
      for (const doc of parseYamlFile(path).docs) {
        if (!isK8sObject(doc)) bad.push(`${rel(path)}: a document without apiVersion and kind`);
        else if (typeof doc.metadata?.name !== 'string') bad.push(`${rel(path)}: ${String(doc.kind)} without metadata.name`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('the CRD', () => {
  it('exists (manifests/crd is the operator developer\'s; until it is written this fails)', () => {
    expect(existsSync(crdPath), CRD_MISSING).toBe(true);
  });

  it('validates as an apiextensions.k8s.io/v1 CustomResourceDefinition, no unknown field', async () => {
    expect(existsSync(crdPath), CRD_MISSING).toBe(true);
    const docs = parseYamlFile(crdPath).docs.filter(isK8sObject);
    expect(docs.map((d) => `${String(d.apiVersion)} ${String(d.kind)}`)).toEqual(['apiextensions.k8s.io/v1 CustomResourceDefinition']);
    expect(await problemsOf(docs.map((object) => ({ source: rel(crdPath), object })))).toEqual([]);
    const validator = customResourceValidator(docs[0]!);
    expect(validator.kinds).toContain('socketbridge.io/v1alpha1/SocketBridge');
  });

  it('the chart carries a byte-identical copy in crds/ (cp manifests/crd/socketbridge.io_socketbridges.yaml charts/socketbridge/crds/)', () => {
    expect(existsSync(crdPath), CRD_MISSING).toBe(true);
    expect(existsSync(chartCrdPath), `${rel(chartCrdPath)} is missing`).toBe(true);
    const same = readFileSync(crdPath).equals(readFileSync(chartCrdPath));
    expect(same, `${rel(chartCrdPath)} differs from ${rel(crdPath)}: copy it again`).toBe(true);
  });

  it('rejects a SocketBridge with an unknown field or a wrong type, naming the field', () => {
    expect(existsSync(crdPath), CRD_MISSING).toBe(true);
    const validator = customResourceValidator(parseYamlFile(crdPath).docs[0] as K8sObject);
    const problems = validator.validate({ apiVersion: 'socketbridge.io/v1alpha1', kind: 'SocketBridge', metadata: { name: 'x' }, spec: { queuez: [] } });
    expect(problems.join('\n')).toMatch(/spec: unknown key "queuez"/);
  });
});

describe('every object in manifests/', () => {
  it('validates against the Kubernetes schema of its kind, or the CRD for SocketBridges', async () => {
    const objects: LabelledObject[] = manifestObjectFiles().flatMap((path) =>
      parseYamlFile(path).docs.filter(isK8sObject).map((object) => ({ source: rel(path), object })),
    );
    expect(objects.length).toBeGreaterThan(20);
    expect(await problemsOf(objects)).toEqual([]);
  });

  it('the example SocketBridges validate against the CRD', async () => {
    const examples = manifestObjectFiles().filter((p) => rel(p).startsWith('manifests/examples/'));
    expect(examples.length, 'manifests/examples/ (the operator developer\'s) has no example yet').toBeGreaterThan(0);
    const objects = examples.flatMap((path) => parseYamlFile(path).docs.filter(isK8sObject).map((object) => ({ source: rel(path), object })));
    expect(objects.filter((o) => o.object.kind === 'SocketBridge').length).toBeGreaterThan(0);
    expect(await problemsOf(objects)).toEqual([]);
  });
});

describe('kustomize', () => {
  let base: K8sObject[] = [];
  let baseError: unknown = null;
  beforeAll(() => {
    try {
      base = kustomize(join(repoRoot, 'manifests', 'base'));
    } catch (error) {
      baseError = error;
    }
  });

  it('kubectl kustomize manifests/base renders (needs manifests/crd/kustomization.yaml listing the CRD)', () => {
    expect(baseError === null ? '' : String((baseError as Error).message)).toBe('');
    expect(base.length).toBeGreaterThan(0);
  });

  it('the base holds the namespace, the CRD, RBAC and a Deployment and Service per component, all in namespace socketbridge', () => {
    expect(baseError === null ? '' : String((baseError as Error).message)).toBe('');
    const names = base.map((o) => `${String(o.kind)}/${String(o.metadata?.name)}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'Namespace/socketbridge',
        'CustomResourceDefinition/socketbridges.socketbridge.io',
        'ServiceAccount/socketbridge-operator',
        'ClusterRole/socketbridge-operator',
        'ClusterRoleBinding/socketbridge-operator',
        'Role/socketbridge-operator-leader-election',
        'RoleBinding/socketbridge-operator-leader-election',
        ...['state', 'broker', 'worker', 'publisher', 'operator'].flatMap((c) => [`Deployment/socketbridge-${c}`, `Service/socketbridge-${c}`]),
        'HorizontalPodAutoscaler/socketbridge-worker',
        'PodDisruptionBudget/socketbridge-worker',
        'PodDisruptionBudget/socketbridge-publisher',
      ]),
    );
    const clusterScoped = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']);
    const misplaced = base.filter((o) => !clusterScoped.has(String(o.kind)) && o.metadata?.namespace !== 'socketbridge').map(describeObject);
    expect(misplaced).toEqual([]);
    const binding = base.find((o) => o.kind === 'ClusterRoleBinding') as { subjects?: { namespace?: string }[] } | undefined;
    expect(binding?.subjects?.[0]?.namespace).toBe('socketbridge');
  });

  it('every object the base renders validates', async () => {
    expect(baseError === null ? '' : String((baseError as Error).message)).toBe('');
    expect(await problemsOf(base.map((object) => ({ source: 'kubectl kustomize manifests/base', object })))).toEqual([]);
  });

  it("the extra-ca component gives the publisher, workers and operator what the chart's extraCaCerts gives them, and changes nothing else", async () => {
    // An overlay as docs/deploying.md tells users to write one (kustomize takes only relative paths).
    const overlay = join(repoRoot, 'test-output', 'kustomize-extra-ca');
    mkdirSync(overlay, { recursive: true });
    writeFileSync(join(overlay, 'kustomization.yaml'), 'resources: [../../manifests/base]\ncomponents: [../../manifests/components/extra-ca]\n');
    const withCa = kustomize(overlay);
    expect(await problemsOf(withCa.map((object) => ({ source: 'manifests/base + components/extra-ca', object })))).toEqual([]);
    const chart = renderChart(join(repoRoot, 'charts', 'socketbridge'), {
      releaseName: 'socketbridge',
      namespace: 'socketbridge',
      values: [{ extraCaCerts: { secretName: 'socketbridge-extra-ca' } }],
    }).objects as unknown as K8sObject[];
    type Pod = { containers: Array<{ name: string; env?: Array<{ name: string; value?: string }>; volumeMounts?: Array<{ name: string }> }>; volumes?: Array<{ name: string }> };
    const podOf = (objects: K8sObject[], component: string) =>
      (objects.find((o) => o.kind === 'Deployment' && o.metadata?.name === `socketbridge-${component}`) as unknown as { spec: { template: { spec: Pod } } }).spec.template.spec;
    const caParts = (pod: Pod) => ({
      env: pod.containers[0]!.env?.filter((e) => e.name === 'NODE_EXTRA_CA_CERTS'),
      mounts: pod.containers[0]!.volumeMounts?.filter((m) => m.name === 'extra-ca'),
      volumes: pod.volumes?.filter((v) => v.name === 'extra-ca'),
    });
    for (const component of ['publisher', 'worker', 'operator']) {
      const ours = caParts(podOf(withCa, component));
      expect(ours.env, component).toHaveLength(1);
      expect(ours, component).toEqual(caParts(podOf(chart, component)));
    }
    // Everything else as the base renders it: the state server and brokers connect to no TLS server.
    const strip = (objects: K8sObject[]) => JSON.stringify(objects.map((o) => (o.kind === 'Deployment' ? { ...o, spec: null } : o)));
    expect(strip(withCa)).toBe(strip(base));
    for (const component of ['state', 'broker']) expect(podOf(withCa, component), component).toEqual(podOf(base, component));
  });

  it('kubectl kustomize manifests/dev renders RabbitMQ (with its management port) and Redis, and they validate', async () => {
    const dev = kustomize(join(repoRoot, 'manifests', 'dev'));
    const names = dev.map((o) => `${String(o.kind)}/${String(o.metadata?.name)}`).sort();
    expect(names).toEqual(['Deployment/rabbitmq', 'Deployment/redis', 'Service/rabbitmq', 'Service/redis']);
    const rabbit = dev.find((o) => o.kind === 'Service' && o.metadata?.name === 'rabbitmq') as { spec: { ports: { port: number }[] } };
    expect(rabbit.spec.ports.map((p) => p.port).sort()).toEqual([15672, 5672]);
    const image = JSON.stringify(dev.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'rabbitmq'));
    expect(image).toMatch(/rabbitmq:[0-9.]+-management/);
    expect(await problemsOf(dev.map((object) => ({ source: 'kubectl kustomize manifests/dev', object })))).toEqual([]);
  });
});
