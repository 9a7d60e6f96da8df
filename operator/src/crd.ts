import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { parse as parseCel } from '@marcbachmann/cel-js';
import { parse } from 'yaml';
import { API_VERSION, KIND, type SocketBridge } from './resource.js';

/** The CRD file, one source of truth (the Helm chart carries an identical copy). */
export const CRD_PATH = fileURLToPath(new URL('../../manifests/crd/socketbridge.io_socketbridges.yaml', import.meta.url));

export type JsonSchema = {
  type?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  required?: string[];
  default?: unknown;
  enum?: unknown[];
  additionalProperties?: boolean | JsonSchema;
  'x-kubernetes-validations'?: Array<{ rule: string; message?: string }>;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  [key: string]: unknown;
};

interface Crd {
  spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: JsonSchema } }> };
}

/** The v1alpha1 openAPIV3Schema, read from the CRD file. */
export function crdSchema(path = CRD_PATH): JsonSchema {
  const crd = parse(readFileSync(path, 'utf8')) as Crd;
  const version = crd.spec.versions.find((v) => v.name === 'v1alpha1');
  if (!version) throw new Error(`${path} has no v1alpha1 version`);
  return version.schema.openAPIV3Schema;
}

/**
 * kubectl's strict field validation refuses unknown fields; AJV needs `additionalProperties:
 * false` to do the same. Objects that preserve unknown fields (metadata) are left open.
 */
function strictCopy(schema: JsonSchema): JsonSchema {
  const copy: JsonSchema = { ...schema };
  if (schema.properties) {
    copy.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, strictCopy(v)]));
    if (!schema['x-kubernetes-preserve-unknown-fields'] && Object.keys(schema.properties).length > 0) copy.additionalProperties = false;
  }
  if (schema.items) copy.items = strictCopy(schema.items);
  return copy;
}

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled) return compiled;
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
  addFormats.default(ajv as never);
  // Kubernetes' own keywords: CEL rules are checked again by the reconciler (bridgeProblems).
  for (const keyword of ['x-kubernetes-validations', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-embedded-resource']) {
    ajv.addKeyword({ keyword });
  }
  const schema = strictCopy(crdSchema());
  // `metadata` is an open object in a CRD; local mode needs a name and keeps the rest.
  schema.properties!.metadata = {
    type: 'object',
    required: ['name'],
    properties: { name: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' }, namespace: { type: 'string' } },
  };
  schema.required = ['apiVersion', 'kind', 'metadata', 'spec'];
  compiled = ajv.compile(schema);
  return compiled;
}

export type Validation = { ok: true; resource: SocketBridge } | { ok: false; errors: string[] };

/**
 * Validates one document as the API server would (types, enums, ranges, required and unknown
 * fields), applies the CRD's defaults, and words each problem for a person:
 * `spec.queues[0].bindings[0].type: must be one of direct, topic, fanout, headers (got "topc")`.
 */
export function validateDocument(document: unknown): Validation {
  if (!document || typeof document !== 'object' || Array.isArray(document)) return { ok: false, errors: ['the document is not a YAML mapping (an object)'] };
  const doc = structuredClone(document) as Record<string, unknown>;
  const errors: string[] = [];
  if (doc.apiVersion !== API_VERSION) errors.push(`apiVersion: must be ${API_VERSION} (got ${JSON.stringify(doc.apiVersion)})`);
  if (doc.kind !== KIND) errors.push(`kind: must be ${KIND} (got ${JSON.stringify(doc.kind)})`);
  const validate = validator();
  if (!validate(doc)) errors.push(...readableErrors(validate.errors ?? [], doc));
  if (errors.length) return { ok: false, errors: [...new Set(errors)] };
  const resource = doc as unknown as SocketBridge;
  const rules = celProblems(crdSchemaCached(), resource);
  if (rules.length) return { ok: false, errors: rules };
  return { ok: true, resource };
}

let cachedSchema: JsonSchema | undefined;
function crdSchemaCached(): JsonSchema {
  cachedSchema ??= crdSchema();
  return cachedSchema;
}

const programs = new Map<string, ReturnType<typeof parseCel>>();

/** One CEL rule, compiled once by a real CEL implementation (@marcbachmann/cel-js). */
export function celProgram(rule: string): ReturnType<typeof parseCel> {
  let program = programs.get(rule);
  if (!program) {
    program = parseCel(rule);
    programs.set(rule, program);
  }
  return program;
}

/**
 * The CRD's CEL rules (x-kubernetes-validations), evaluated as the API server evaluates them:
 * each rule at its node of the schema with `self` bound to that node's value (every element, for
 * a rule under `items`); a node that is absent is not evaluated. The rules are read from the CRD
 * file, so it is their single source. Problems read `<path>: <message>` (a string's value is
 * quoted after it); a rule that cannot be evaluated counts as failed, with why.
 */
export function celProblems(schema: JsonSchema, value: unknown, path = ''): string[] {
  if (value === undefined || value === null) return [];
  const problems: string[] = [];
  for (const { rule, message } of schema['x-kubernetes-validations'] ?? []) {
    let result: unknown;
    let failure = '';
    try {
      result = celProgram(rule)({ self: value });
    } catch (error) {
      failure = ` (the rule ${JSON.stringify(rule)} could not be evaluated: ${(error as Error).message})`;
    }
    if (result !== true) problems.push(`${path || '(root)'}: ${message ?? `failed rule: ${rule}`}${typeof value === 'string' ? ` (got ${JSON.stringify(value)})` : ''}${failure}`);
  }
  if (schema.properties && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(schema.properties)) problems.push(...celProblems(child, (value as Record<string, unknown>)[key], path ? `${path}.${key}` : key));
  }
  if (schema.items && Array.isArray(value)) value.forEach((item, i) => problems.push(...celProblems(schema.items!, item, `${path}[${i}]`)));
  return problems;
}

/**
 * What an API server does to a custom resource before storing it, for the stand-in: drops fields
 * the schema does not know (pruning; `x-kubernetes-preserve-unknown-fields` keeps them) and fills
 * in defaults. Returns a new value.
 */
export function pruneAndDefault(schema: JsonSchema, value: unknown): unknown {
  if (value === undefined || value === null) return value;
  if (Array.isArray(value)) return schema.items ? value.map((item) => pruneAndDefault(schema.items!, item)) : value;
  if (typeof value !== 'object' || !schema.properties) return value;
  const source = value as Record<string, unknown>;
  const result: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(source)) {
    if (schema.properties[key]) result[key] = pruneAndDefault(schema.properties[key], child);
    else if (schema['x-kubernetes-preserve-unknown-fields']) result[key] = child;
  }
  for (const [key, child] of Object.entries(schema.properties)) {
    if (result[key] === undefined && child.default !== undefined) result[key] = pruneAndDefault(child, structuredClone(child.default));
  }
  return result;
}

/** Every CEL rule in a schema, with where it sits (`spec.queues`, `spec.channels[]`, …). */
export function celRules(schema: JsonSchema, path = ''): Array<{ path: string; rule: string; message: string }> {
  const found = (schema['x-kubernetes-validations'] ?? []).map((v) => ({ path: path || '(root)', rule: v.rule, message: v.message ?? v.rule }));
  for (const [key, child] of Object.entries(schema.properties ?? {})) found.push(...celRules(child, path ? `${path}.${key}` : key));
  if (schema.items) found.push(...celRules(schema.items, `${path}[]`));
  return found;
}

function pathOf(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : path ? `${path}.${segment}` : segment), '');
}

function valueAt(doc: unknown, instancePath: string): unknown {
  let current: unknown = doc;
  for (const segment of instancePath.split('/').slice(1)) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function readableErrors(errors: ErrorObject[], doc: unknown): string[] {
  const lines: string[] = [];
  for (const error of errors) {
    const path = pathOf(error.instancePath);
    const at = path || '(document)';
    const got = JSON.stringify(valueAt(doc, error.instancePath));
    const params = error.params as Record<string, unknown>;
    switch (error.keyword) {
      case 'required':
        lines.push(`${path ? `${path}.` : ''}${String(params.missingProperty)}: required field missing`);
        break;
      case 'additionalProperties': {
        const field = String(params.additionalProperty);
        const known = Object.keys((error.parentSchema as JsonSchema | undefined)?.properties ?? {});
        const near = known.find((k) => distance(k.toLowerCase(), field.toLowerCase()) <= Math.max(2, Math.floor(field.length / 4)));
        lines.push(`${path ? `${path}.` : ''}${field}: unknown field${near ? ` (did you mean ${near}?)` : known.length ? ` (known: ${known.join(', ')})` : ''}`);
        break;
      }
      case 'enum':
        lines.push(`${at}: must be one of ${(params.allowedValues as unknown[]).join(', ')} (got ${got})`);
        break;
      case 'type':
        lines.push(`${at}: must be ${article(String(params.type))} (got ${got})`);
        break;
      case 'minItems':
        lines.push(`${at}: needs at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}`);
        break;
      case 'maxItems':
        lines.push(`${at}: takes at most ${String(params.limit)} items`);
        break;
      case 'minLength':
        lines.push(params.limit === 1 ? `${at}: must not be empty` : `${at}: must be at least ${String(params.limit)} characters`);
        break;
      case 'maxLength':
        lines.push(`${at}: must be at most ${String(params.limit)} characters`);
        break;
      case 'minimum':
      case 'maximum':
        lines.push(`${at}: must be ${error.keyword === 'minimum' ? 'at least' : 'at most'} ${String(params.limit)} (got ${got})`);
        break;
      case 'pattern':
        lines.push(`${at}: ${got} is not allowed here (${patternHint(path)})`);
        break;
      default:
        lines.push(`${at}: ${error.message ?? error.keyword}`);
    }
  }
  return lines;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

function article(type: string): string {
  return type === 'integer' || type === 'object' || type === 'array' ? `an ${type}` : `a ${type}`;
}

function patternHint(path: string): string {
  if (path === 'metadata.name') return 'a DNS label: lower-case letters, digits and -, at most 63 characters';
  if (path.endsWith('connectionSecret.name')) return 'a Secret name: lower-case letters, digits, - and .';
  return 'no control characters';
}
