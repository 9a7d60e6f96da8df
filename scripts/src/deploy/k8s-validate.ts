/**
 * Offline validation of Kubernetes objects, no cluster and no network:
 * - kubernetes-models' per-kind validators (the Kubernetes OpenAPI schemas compiled to JS) check
 *   types, required fields and formats;
 * - a walk along the same package's TypeScript interfaces catches unknown fields (a misspelt
 *   `readinesProbe` passes the OpenAPI schemas, which allow extra keys, and Kubernetes would
 *   silently drop it);
 * - custom resources are checked against their CRD's openAPIV3Schema, unknown fields included.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import ts from 'typescript';
import { formatSchemaErrors } from './helm-render.js';

export type K8sObject = Record<string, unknown> & { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };

export interface LabelledObject {
  /** Where it came from, for messages: "manifests/base/worker.yaml" or "chart (defaults) templates/worker.yaml". */
  source: string;
  object: K8sObject;
}

const require = createRequire(import.meta.url);
const modelsRoot = dirname(require.resolve('kubernetes-models/package.json'));

export function describe(object: K8sObject): string {
  const name = typeof object.metadata?.name === 'string' ? object.metadata.name : '(no name)';
  return `${String(object.kind)} ${name}`;
}

/** "apps/v1" + "Deployment" -> the module path inside kubernetes-models ("apps/v1/Deployment"), or null if it has none. */
export function modelPath(apiVersion: string, kind: string): string | null {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const dir = group ? `${group}/${version}` : version!;
  try {
    require.resolve(`kubernetes-models/${dir}/${kind}`);
    return `${dir}/${kind}`;
  } catch {
    return null;
  }
}

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

/** kubernetes-models' schema check; returns the problems (empty when valid). */
export async function validateWithModels(object: K8sObject): Promise<string[]> {
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') return ['apiVersion and kind must be strings'];
  const path = modelPath(object.apiVersion, object.kind);
  if (!path) return [`no Kubernetes schema for ${object.apiVersion} ${object.kind} (not a built-in kind of kubernetes-models 4.5.1)`];
  const module = (await import(`kubernetes-models/${path}`)) as Record<string, ModelClass>;
  const Class = module[object.kind];
  if (!Class) return [`kubernetes-models/${path} exports no ${object.kind}`];
  try {
    new Class(object).validate();
    return [];
  } catch (error) {
    return [error instanceof Error ? error.message : String(error)];
  }
}

/**
 * Unknown fields, which the OpenAPI validators let through (and Kubernetes drops silently): walks
 * each object along its kind's TypeScript interface in kubernetes-models and reports every key the
 * interface does not declare, e.g. "spec.template.spec.containers[0].readinesProbe: unknown field
 * (IContainer has no readinesProbe)". One TypeScript program for all objects (about two seconds).
 * Returns the problems per object index.
 */
export function unknownFieldCheck(objects: K8sObject[]): Map<number, string[]> {
  const problems = new Map<number, string[]>();
  const wanted = new Map<string, string>();
  objects.forEach((object) => {
    if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') return;
    const path = modelPath(object.apiVersion, object.kind);
    if (path) wanted.set(path, `T_${path.replace(/[^A-Za-z0-9]/g, '_')}`);
  });
  if (!wanted.size) return problems;
  const file = join(modelsRoot, '__unknown_field_check.ts');
  const text = [...wanted]
    .map(([path, alias]) => `import type { I${path.split('/').pop()} as ${alias} } from "./${path}";\nexport type ${alias}_ = ${alias};`)
    .join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    noResolve: false,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: [],
    lib: ['lib.es5.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (name) => (name === file ? text : readFile(name));
  host.fileExists = (name) => name === file || fileExists(name);
  host.getSourceFile = (name, languageVersion, onError, shouldCreate) =>
    name === file ? ts.createSourceFile(name, text, languageVersion, true) : getSourceFile(name, languageVersion, onError, shouldCreate);
  const program = ts.createProgram([file], options, host);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file)!;
  const types = new Map<string, ts.Type>();
  for (const statement of source.statements) {
    if (ts.isTypeAliasDeclaration(statement)) types.set(statement.name.text.replace(/_$/, ''), checker.getTypeAtLocation(statement.name));
  }

  const typeName = (type: ts.Type): string => checker.typeToString(type);
  const walk = (value: unknown, type: ts.Type, path: string, out: string[]): void => {
    type = checker.getNonNullableType(type);
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    if (Array.isArray(value)) {
      const element = checker.getIndexTypeOfType(type, ts.IndexKind.Number);
      if (element) value.forEach((item, i) => walk(item, element, `${path}[${i}]`, out));
      return;
    }
    if (!value || typeof value !== 'object') return;
    // Unions (IntOrString and the like): the object-shaped members.
    const candidates = type.isUnion() ? type.types.filter((t) => t.flags & ts.TypeFlags.Object) : [type];
    if (!candidates.length) return;
    const candidate = candidates[0]!;
    const index = checker.getIndexTypeOfType(candidate, ts.IndexKind.String);
    // Free-form JSON (JSONSchemaPropsOrArray, RawExtension and the like): no declared fields to hold it to.
    if (!index && candidates.every((t) => t.getProperties().length === 0)) return;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      const where = path ? `${path}.${key}` : key;
      const property = candidates.map((t) => t.getProperty(key)).find(Boolean);
      if (property) walk(child, checker.getTypeOfSymbol(property), where, out);
      else if (index) walk(child, index, where, out);
      else out.push(`${where}: unknown field (${typeName(candidate)} has no "${key}")`);
    }
  };
  objects.forEach((object, i) => {
    if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') return;
    const path = modelPath(object.apiVersion, object.kind);
    const type = path ? types.get(wanted.get(path)!) : undefined;
    if (!type) return;
    const out: string[] = [];
    walk(object, type, '', out);
    if (out.length) problems.set(i, out);
  });
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Custom resources

export interface CrdVersionSchema {
  group: string;
  kind: string;
  version: string;
  schema: Record<string, unknown>;
}

/** The openAPIV3Schema of every served version of a CRD. */
export function crdSchemas(crd: K8sObject): CrdVersionSchema[] {
  const spec = crd.spec as { group?: string; names?: { kind?: string }; versions?: { name: string; served?: boolean; schema?: { openAPIV3Schema?: Record<string, unknown> } }[] };
  return (spec.versions ?? [])
    .filter((v) => v.served !== false && v.schema?.openAPIV3Schema)
    .map((v) => ({ group: String(spec.group), kind: String(spec.names?.kind), version: v.name, schema: v.schema!.openAPIV3Schema! }));
}

/**
 * A structural schema as the API server applies it: unknown fields are pruned there, so they are
 * errors here (additionalProperties: false wherever properties are listed and unknown fields are
 * not preserved); `nullable` allows null; metadata is checked by Kubernetes, not the CRD.
 */
export function strictStructuralSchema(schema: unknown, isRoot = true): unknown {
  if (Array.isArray(schema)) return schema.map((s) => strictStructuralSchema(s, false));
  if (!schema || typeof schema !== 'object') return schema;
  const node = { ...(schema as Record<string, unknown>) };
  for (const key of ['properties', 'patternProperties']) {
    if (node[key] && typeof node[key] === 'object') {
      node[key] = Object.fromEntries(Object.entries(node[key] as Record<string, unknown>).map(([k, v]) => [k, strictStructuralSchema(v, false)]));
    }
  }
  for (const key of ['items', 'additionalProperties', 'not']) if (node[key] && typeof node[key] === 'object') node[key] = strictStructuralSchema(node[key], false);
  for (const key of ['allOf', 'anyOf', 'oneOf']) if (Array.isArray(node[key])) node[key] = (node[key] as unknown[]).map((s) => strictStructuralSchema(s, false));
  if (node['x-kubernetes-int-or-string'] === true) {
    delete node.type;
    node.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  if (node.nullable === true && typeof node.type === 'string') node.type = [node.type, 'null'];
  delete node.nullable;
  if (node.properties && node.additionalProperties === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true) {
    node.additionalProperties = false;
  }
  if (isRoot && node.properties) {
    const props = { ...(node.properties as Record<string, unknown>) };
    props.apiVersion = { type: 'string' };
    props.kind = { type: 'string' };
    props.metadata = { type: 'object' };
    node.properties = props;
  }
  return node;
}

export function customResourceValidator(crd: K8sObject) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  for (const keyword of [
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-int-or-string',
    'x-kubernetes-embedded-resource',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-map-type',
    'x-kubernetes-validations',
  ]) {
    ajv.addKeyword({ keyword });
  }
  const validators = new Map<string, ReturnType<Ajv['compile']>>();
  for (const { group, kind, version, schema } of crdSchemas(crd)) {
    validators.set(`${group}/${version}/${kind}`, ajv.compile(strictStructuralSchema(schema) as object));
  }
  return {
    kinds: [...validators.keys()],
    handles: (object: K8sObject) => validators.has(`${String(object.apiVersion)}/${String(object.kind)}`),
    validate(object: K8sObject): string[] {
      const validate = validators.get(`${String(object.apiVersion)}/${String(object.kind)}`);
      if (!validate) return [`the CRD serves no ${String(object.apiVersion)} ${String(object.kind)}`];
      return validate(object) ? [] : formatSchemaErrors(validate.errors as ErrorObject[]).split('\n');
    },
  };
}

/** Kinds with no offline schema here, checked by hand instead: the reason is reported with each. */
export const kindsWithoutSchema: Record<string, string> = {
  'monitoring.coreos.com/v1/ServiceMonitor': 'prometheus-operator CRD, not in kubernetes-models',
};

function serviceMonitorProblems(object: K8sObject): string[] {
  const spec = object.spec as { selector?: { matchLabels?: unknown }; endpoints?: { port?: unknown; path?: unknown; interval?: unknown }[] } | undefined;
  const problems: string[] = [];
  if (!spec?.selector?.matchLabels || typeof spec.selector.matchLabels !== 'object') problems.push('spec.selector.matchLabels is required');
  if (!Array.isArray(spec?.endpoints) || !spec.endpoints.length) problems.push('spec.endpoints must list at least one endpoint');
  for (const [i, e] of (spec?.endpoints ?? []).entries()) {
    if (typeof e.port !== 'string') problems.push(`spec.endpoints[${i}].port must name a Service port`);
    if (e.interval !== undefined && !/^[0-9]+(ms|s|m|h)$/.test(String(e.interval))) problems.push(`spec.endpoints[${i}].interval is not a duration`);
  }
  return problems;
}

/**
 * Every problem of every object, one line each, prefixed with its source and kind/name: built-in
 * kinds against kubernetes-models (schema, then unknown fields), SocketBridges against `crd`
 * (null: reported as missing), ServiceMonitors structurally; any other kind is an error.
 */
export async function validateObjects(objects: LabelledObject[], crd: K8sObject | null, crdMissing = 'the SocketBridge CRD is missing'): Promise<string[]> {
  const problems: string[] = [];
  const crdValidator = crd ? customResourceValidator(crd) : null;
  const builtIn: number[] = [];
  for (const [i, { source, object }] of objects.entries()) {
    const where = `${source}: ${describe(object)}`;
    const key = `${String(object.apiVersion)}/${String(object.kind)}`;
    if (String(object.apiVersion).startsWith('socketbridge.io/')) {
      if (!crdValidator) problems.push(`${where}: ${crdMissing}`);
      else problems.push(...crdValidator.validate(object).map((p) => `${where}: ${p.trim()}`));
    } else if (key === 'monitoring.coreos.com/v1/ServiceMonitor') {
      problems.push(...serviceMonitorProblems(object).map((p) => `${where}: ${p}`));
    } else {
      builtIn.push(i);
      problems.push(...(await validateWithModels(object)).map((p) => `${where}: ${p}`));
    }
  }
  const unknown = unknownFieldCheck(builtIn.map((i) => objects[i]!.object));
  for (const [j, list] of unknown) {
    const { source, object } = objects[builtIn[j]!]!;
    problems.push(...list.map((p) => `${source}: ${describe(object)}: ${p}`));
  }
  return problems;
}
