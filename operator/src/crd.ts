import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
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
  const rules = Object.values(CEL_RULES).flatMap((check) => check(resource));
  if (rules.length) return { ok: false, errors: rules };
  return { ok: true, resource };
}

function duplicates(values: string[]): string[] {
  return [...new Set(values.filter((value, i) => values.indexOf(value) !== i))];
}

/**
 * The CRD's CEL rules (x-kubernetes-validations), by message, as local mode checks them (AJV
 * cannot run CEL). operator/test/crd.test.ts fails if the CRD gains a rule that is not here.
 */
export const CEL_RULES: Record<string, (resource: SocketBridge) => string[]> = {
  'metadata.name must be a DNS label (at most 63 characters, no dots): it names the bridge in the registry': (r) => {
    const name = r.metadata.name ?? '';
    return name.length <= 63 && !name.includes('.') ? [] : [`metadata.name: must be a DNS label (at most 63 characters, no dots): it names the bridge in the registry (got ${JSON.stringify(name)})`];
  },
  'queue names must be unique within a SocketBridge': (r) =>
    duplicates(r.spec.queues.map((q) => q.name)).map((name) => `spec.queues: queue names must be unique within a SocketBridge (${name} is declared more than once)`),
  'queue names starting with amq. are reserved by RabbitMQ': (r) =>
    r.spec.queues.flatMap((q, i) => (q.name.startsWith('amq.') ? [`spec.queues[${i}].name: queue names starting with amq. are reserved by RabbitMQ (got ${JSON.stringify(q.name)})`] : [])),
  'channel patterns must be unique within a SocketBridge': (r) =>
    duplicates((r.spec.channels ?? []).map((c) => c.pattern)).map((pattern) => `spec.channels: channel patterns must be unique within a SocketBridge (${pattern} is declared more than once)`),
  'owner access needs a {clientId} segment in the pattern': (r) =>
    (r.spec.channels ?? []).flatMap((c, i) =>
      c.access === 'owner' && !c.pattern.includes('{clientId}') ? [`spec.channels[${i}]: owner access needs a {clientId} segment in the pattern (got ${JSON.stringify(c.pattern)})`] : [],
    ),
};

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
