/**
 * The deployment artefacts of this repository as data, for the checks in scripts/test/deploy:
 * YAML files, kustomize renders (`kubectl kustomize`), the Dockerfile's instructions, the
 * Tiltfile's calls (parsed with Python's ast: Starlark is a Python subset) and the containers every
 * workload runs, next to the services' own config schemas.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import type { K8sObject } from './k8s-validate.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const chartDir = join(repoRoot, 'charts', 'socketbridge');
export const crdPath = join(repoRoot, 'manifests', 'crd', 'socketbridge.io_socketbridges.yaml');
export const chartCrdPath = join(chartDir, 'crds', 'socketbridge.io_socketbridges.yaml');

export function rel(path: string): string {
  return relative(repoRoot, path).split(sep).join('/');
}

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else out.push(path);
  }
  return out;
}

/** Every .yaml/.yml file under manifests/ and charts/, except Go-templated chart templates. */
export function plainYamlFiles(): string[] {
  return [...walk(join(repoRoot, 'manifests')), ...walk(join(repoRoot, 'charts'))].filter(
    (path) => /\.ya?ml$/.test(path) && !/\/charts\/[^/]+\/templates\//.test(path.split(sep).join('/')),
  );
}

export interface ParsedYaml {
  path: string;
  docs: unknown[];
  errors: string[];
}

export function parseYamlFile(path: string): ParsedYaml {
  const docs = YAML.parseAllDocuments(readFileSync(path, 'utf8'));
  const errors: string[] = [];
  const values: unknown[] = [];
  for (const doc of docs) {
    for (const error of doc.errors) errors.push(error.message);
    if (!doc.errors.length) values.push(doc.toJS());
  }
  return { path, docs: values.filter((d) => d !== null && d !== undefined), errors };
}

export function isK8sObject(doc: unknown): doc is K8sObject {
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && typeof (doc as K8sObject).apiVersion === 'string' && typeof (doc as K8sObject).kind === 'string';
}

/** Files under manifests/ that hold Kubernetes objects (kustomization.yaml files are kustomize's own config). */
export function manifestObjectFiles(): string[] {
  return plainYamlFiles().filter((path) => rel(path).startsWith('manifests/') && !/kustomization\.ya?ml$/.test(path));
}

export class KubectlMissingError extends Error {
  override name = 'KubectlMissingError';
}

/** `kubectl kustomize <dir>`: the objects it renders, or an error carrying kustomize's message. */
export function kustomize(dir: string): K8sObject[] {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (probe.error) {
    throw new KubectlMissingError(
      'kubectl is not installed: the kustomize renders need it (Debian: apt-get install kubernetes-client; or the upstream kubectl package)',
    );
  }
  let output: string;
  try {
    output = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? String(error);
    throw new Error(`kubectl kustomize ${rel(dir)} failed:\n${stderr.trim()}`);
  }
  return YAML.parseAllDocuments(output)
    .map((doc) => doc.toJS() as unknown)
    .filter(isK8sObject);
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

export interface DockerInstruction {
  instruction: string;
  args: string;
  line: number;
  stage: string;
}

/** The Dockerfile's instructions with continuation lines joined, each tagged with its stage name. */
export function dockerfileInstructions(text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8')): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  const lines = text.split('\n');
  let stage = '';
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const instruction = m[1]!.toUpperCase();
    if (instruction === 'FROM') {
      const as = /\bAS\s+(\S+)/i.exec(m[2]!);
      stage = as ? as[1]! : `stage${out.filter((x) => x.instruction === 'FROM').length}`;
    }
    out.push({ instruction, args: m[2]!.trim(), line: start + 1, stage });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tiltfile

export interface TiltCall {
  fn: string;
  line: number;
  /**
   * Positional arguments, folded to constants where they are (strings, lists, dicts, names bound to
   * constants, list comprehensions over constants); a call as {$call, args, kwargs}; anything else
   * as {$expr: its source}.
   */
  args: unknown[];
  kwargs: Record<string, unknown>;
}

const TILT_PARSER = String.raw`
import ast, json, sys
source = open(sys.argv[1]).read()
tree = ast.parse(source, filename=sys.argv[1])
consts = {}
def fold(node, scope=None):
    scope = scope or {}
    f = lambda n: fold(n, scope)
    if isinstance(node, ast.Constant): return node.value
    if isinstance(node, ast.Name):
        if node.id in scope: return scope[node.id]
        if node.id in consts: return consts[node.id]
        return {"$name": node.id}
    if isinstance(node, ast.List) or isinstance(node, ast.Tuple): return [f(e) for e in node.elts]
    if isinstance(node, ast.Dict): return {str(f(k)): f(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = f(node.left), f(node.right)
        if isinstance(a, str) and isinstance(b, str): return a + b
        if isinstance(a, list) and isinstance(b, list): return a + b
        return {"$expr": ast.unparse(node)}
    if isinstance(node, ast.ListComp) and len(node.generators) == 1 and not node.generators[0].ifs and isinstance(node.generators[0].target, ast.Name):
        items = f(node.generators[0].iter)
        if not isinstance(items, list): return {"$expr": ast.unparse(node)}
        return [fold(node.elt, {**scope, node.generators[0].target.id: item}) for item in items]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return {"$call": node.func.id, "args": [f(a) for a in node.args], "kwargs": {k.arg: f(k.value) for k in node.keywords}}
    return {"$expr": ast.unparse(node)}
for stmt in tree.body:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        value = fold(stmt.value)
        if not (isinstance(value, dict) and ("$call" in value or "$expr" in value)): consts[stmt.targets[0].id] = value
calls = []
for node in ast.walk(tree):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        calls.append({"fn": node.func.id, "line": node.lineno, "args": [fold(a) for a in node.args], "kwargs": {k.arg: fold(k.value) for k in node.keywords}})
calls.sort(key=lambda c: c["line"])
# Python that Starlark (go.starlark.net, as Tilt runs it) does not have.
not_starlark = (ast.While, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Try, ast.With, ast.Global, ast.Nonlocal,
                ast.JoinedStr, ast.Yield, ast.YieldFrom, ast.Await, ast.AsyncFunctionDef, ast.Raise, ast.Assert, ast.Delete)
python_only = [f"{type(n).__name__} at line {n.lineno}" for n in ast.walk(tree) if isinstance(n, not_starlark)]
print(json.dumps({"calls": calls, "consts": consts, "pythonOnly": python_only}))
`;

export class TiltfileSyntaxError extends Error {
  override name = 'TiltfileSyntaxError';
}

/** Parses the Tiltfile with python3's ast (Starlark's syntax is a subset of Python's). */
export interface ParsedTiltfile {
  calls: TiltCall[];
  consts: Record<string, unknown>;
  /** Python constructs Starlark lacks (while, class, import, try, f-strings ...), with their lines. */
  pythonOnly: string[];
}

export function tiltfileCalls(path = join(repoRoot, 'Tiltfile')): ParsedTiltfile {
  const result = spawnSync('python3', ['-c', TILT_PARSER, path], { encoding: 'utf8', timeout: 30_000 });
  if (result.error) throw new Error(`python3 is needed to parse the Tiltfile: ${result.error.message}`);
  if (result.status !== 0) throw new TiltfileSyntaxError(`the Tiltfile does not parse:\n${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as ParsedTiltfile;
}

// ---------------------------------------------------------------------------------------------
// Workloads and the services' config schemas

export type ServiceName = 'state' | 'broker' | 'worker' | 'publisher' | 'operator' | 'helm-test';

/** Entry point (as a container's args name it) -> service. */
export const entryPoints: Record<string, ServiceName> = {
  'services/state/dist/main.js': 'state',
  'services/broker/dist/main.js': 'broker',
  'services/worker/dist/main.js': 'worker',
  'services/publisher/dist/main.js': 'publisher',
  'operator/dist/main.js': 'operator',
  'scripts/dist/deploy/helm-test-client.js': 'helm-test',
};

/** The variable each service listens on. */
export const portVariables: Partial<Record<ServiceName, string>> = {
  state: 'SCC_STATE_SERVER_PORT',
  broker: 'SCC_BROKER_SERVER_PORT',
  worker: 'SOCKETCLUSTER_PORT',
  publisher: 'SOCKETBRIDGE_PORT',
};

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string }; configMapKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path?: string; port?: number | string };
}
export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: unknown;
  securityContext?: Record<string, unknown>;
}

export interface Workload {
  source: string;
  object: K8sObject;
  service: ServiceName | null;
  container: Container;
  podSpec: Record<string, unknown> & { terminationGracePeriodSeconds?: number; securityContext?: Record<string, unknown> };
}

export function podSpecOf(object: K8sObject): Workload['podSpec'] | null {
  const spec = object.spec as Record<string, unknown> | undefined;
  if (!spec) return null;
  if (object.kind === 'Pod') return spec as Workload['podSpec'];
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(String(object.kind))) {
    return ((spec.template as { spec?: unknown } | undefined)?.spec ?? null) as Workload['podSpec'] | null;
  }
  return null;
}

export function workloads(objects: { source: string; object: K8sObject }[]): Workload[] {
  const out: Workload[] = [];
  for (const { source, object } of objects) {
    const podSpec = podSpecOf(object);
    if (!podSpec) continue;
    for (const container of (podSpec.containers as Container[] | undefined) ?? []) {
      const argv = [...(container.command ?? []), ...(container.args ?? [])];
      const entry = argv.find((a) => a in entryPoints);
      out.push({ source, object, service: entry ? entryPoints[entry]! : null, container, podSpec });
    }
  }
  return out;
}

export interface ServiceSchema {
  /** Every variable the service reads. */
  names: string[];
  /** Those without a default: the deployment must set them. */
  required: string[];
  /** The value the service uses when the variable is unset. */
  defaultOf(name: string): unknown;
  /** Whether `value` passes the variable's own validation. */
  accepts(name: string, value: string): boolean;
}

interface ZodLike {
  safeParse(v: unknown): { success: boolean; data?: unknown };
}

/** Loads a service's env schema from its build (services/<name>/dist/config.js). */
export async function loadServiceSchema(distConfig: string, exportName: string): Promise<ServiceSchema> {
  if (!existsSync(distConfig)) throw new Error(`${rel(distConfig)} is missing: build first (npx tsc -b services/state services/broker services/worker services/publisher)`);
  const module = (await import(pathToFileURL(distConfig).href)) as Record<string, Record<string, ZodLike> | undefined>;
  const shape = module[exportName];
  if (!shape) throw new Error(`${rel(distConfig)} exports no ${exportName}`);
  const names = Object.keys(shape);
  return {
    names,
    required: names.filter((name) => !shape[name]!.safeParse(undefined).success),
    defaultOf: (name) => shape[name]?.safeParse(undefined).data,
    accepts: (name, value) => Boolean(shape[name]?.safeParse(value).success),
  };
}

export const serviceSchemas: { service: ServiceName; dist: string; exportName: string }[] = [
  { service: 'state', dist: 'services/state/dist/config.js', exportName: 'stateEnv' },
  { service: 'broker', dist: 'services/broker/dist/config.js', exportName: 'brokerEnv' },
  { service: 'worker', dist: 'services/worker/dist/config.js', exportName: 'workerEnv' },
  { service: 'publisher', dist: 'services/publisher/dist/config.js', exportName: 'publisherEnv' },
];

/**
 * The operator's variables when its build exists (operator/dist/config.js, written alongside this
 * work). It exports a loader rather than a schema object, so the loader is run against a recording
 * environment: the names it reads, the defaults it returns, and the names it calls required.
 */
export async function loadOperatorSchema(): Promise<ServiceSchema | null> {
  const dist = join(repoRoot, 'operator', 'dist', 'config.js');
  if (!existsSync(dist)) return null;
  const module = (await import(pathToFileURL(dist).href)) as Record<string, unknown>;
  const load = module.loadOperatorConfig;
  if (typeof load !== 'function') return null;
  const run = (source: Record<string, string>) => {
    const read = new Set<string>();
    const proxy = new Proxy(source, {
      get(target, key) {
        if (typeof key === 'string') read.add(key);
        return typeof key === 'string' ? target[key] : undefined;
      },
    });
    try {
      return { read, config: (load as (env: unknown) => Record<string, unknown>)(proxy), error: '' };
    } catch (error) {
      return { read, config: null, error: error instanceof Error ? error.message : String(error) };
    }
  };
  const empty = run({});
  const required = [...empty.error.matchAll(/^\s+([A-Z][A-Z0-9_]*): required/gm)].map((m) => m[1]!);
  return {
    names: [...empty.read],
    required,
    defaultOf: (name) => empty.config?.[name],
    accepts: (name, value) => !new RegExp(`^\\s+${name}:`, 'm').test(run({ [name]: value }).error),
  };
}

/**
 * How long each service's SIGTERM shutdown may take, in ms, given the env it gets: read from the
 * services' main.ts (the broker's bound is its drain timeout plus a fixed margin).
 */
export function shutdownBoundMs(service: ServiceName, env: Record<string, string>, schema: ServiceSchema): number {
  const num = (name: string) => Number(env[name] ?? schema.defaultOf(name));
  if (service === 'broker') {
    const main = readFileSync(join(repoRoot, 'services', 'broker', 'src', 'main.ts'), 'utf8');
    const m = /timeoutMs:\s*config\.SOCKETBRIDGE_DRAIN_TIMEOUT_MS\s*\+\s*(\d+)/.exec(main);
    if (!m) throw new Error('services/broker/src/main.ts: cannot find the shutdown bound (timeoutMs: config.SOCKETBRIDGE_DRAIN_TIMEOUT_MS + N)');
    return num('SOCKETBRIDGE_DRAIN_TIMEOUT_MS') + Number(m[1]);
  }
  return num('SOCKETBRIDGE_SHUTDOWN_TIMEOUT_MS');
}

/** Env values that are literal in the manifest (not from a Secret or the downward API). */
export function literalEnv(container: Container): Record<string, string> {
  return Object.fromEntries((container.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, String(e.value)]));
}
