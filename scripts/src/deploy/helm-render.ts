/**
 * Renders a Helm chart the way `helm template` would, with the Go-template emulation in
 * gotemplate.ts and the Sprig/Helm functions the chart uses. Values are validated against the
 * chart's values.schema.json first, as Helm does. What differs from Helm: `lookup` always finds
 * nothing (as in `helm template`), randAlphaNum is deterministic, and only the functions below exist
 * (an unknown one is an error, so a template cannot silently use something this does not check).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, posix, relative, sep } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import YAML from 'yaml';
import { Executor, TemplateError, isTrue, parseTemplate, printValue, type TemplateFunction, type Value } from './gotemplate.js';

export type Values = Record<string, unknown>;

export interface RenderOptions {
  releaseName?: string;
  namespace?: string;
  /** Merged over values.yaml in order, like repeated `-f`. */
  values?: Values[];
  /** Built-in API versions the fake cluster reports (.Capabilities.APIVersions.Has). */
  apiVersions?: string[];
}

export interface RenderedFile {
  /** e.g. socketbridge/templates/worker.yaml */
  name: string;
  text: string;
}

export interface RenderResult {
  files: RenderedFile[];
  /** Every manifest, parsed, in file order. */
  objects: Record<string, unknown>[];
  /** The objects of each template file. */
  objectsByFile: Map<string, Record<string, unknown>[]>;
  notes: string;
  /** Every path read under .Values while rendering, e.g. "worker.port". */
  valuePathsRead: Set<string>;
  values: Values;
}

export class ValuesSchemaError extends Error {
  override name = 'ValuesSchemaError';
  constructor(readonly errors: ErrorObject[]) {
    super(`values don't meet the chart's schema:\n${formatSchemaErrors(errors)}`);
  }
}

/** One line per problem, with the value's path: "worker.port: must be <= 65535". */
export function formatSchemaErrors(errors: ErrorObject[]): string {
  return errors
    .map((e) => {
      const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)';
      if (e.keyword === 'additionalProperties') return `  ${path}: unknown key "${String(e.params.additionalProperty)}"`;
      if (e.keyword === 'required') return `  ${path}: missing key "${String(e.params.missingProperty)}"`;
      if (e.keyword === 'enum') return `  ${path}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      return `  ${path}: ${e.message ?? e.keyword}`;
    })
    .join('\n');
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Helm's coalescing: maps merge key by key, anything else replaces, null deletes. */
export function mergeValues(base: Values, override: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete out[key];
    else if (isMap(value) && isMap(out[key])) out[key] = mergeValues(out[key] as Values, value);
    else out[key] = value;
  }
  return out;
}

/**
 * YAML as Helm and Kubernetes read it: YAML 1.1 (go-yaml v2, through sigs.k8s.io/yaml), where
 * unquoted on/off/yes/no/y/n are booleans and 0777 is octal, not YAML 1.2's strings and decimal.
 * Timestamps and base-60 numbers stay strings, as go-yaml leaves them when decoding into interface{}.
 */
export const goYamlOptions = {
  version: '1.1' as const,
  customTags: (tags: YAML.Tags) =>
    tags.filter((t) => typeof t === 'string' || (t.tag !== 'tag:yaml.org,2002:timestamp' && (t as { format?: string }).format !== 'TIME')),
};

export function loadYamlFile(path: string): unknown {
  return YAML.parse(readFileSync(path, 'utf8'), goYamlOptions);
}

const compiledSchemas = new Map<string, { text: string; validate: ReturnType<Ajv['compile']> }>();

/** The chart's values.schema.json compiled (once per content). */
export function compileValuesSchema(chartDir: string) {
  const text = readFileSync(join(chartDir, 'values.schema.json'), 'utf8');
  const cached = compiledSchemas.get(chartDir);
  if (cached?.text === text) return cached.validate;
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(JSON.parse(text) as object);
  compiledSchemas.set(chartDir, { text, validate });
  return validate;
}

export function validateValues(chartDir: string, values: Values): ErrorObject[] {
  const validate = compileValuesSchema(chartDir);
  return validate(values) ? [] : (validate.errors ?? []);
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...listFiles(path));
    else out.push(path);
  }
  return out.sort();
}

/** Glob as Helm's .Files.Glob does for the patterns charts use: `*` within a path segment, `**` across. */
function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

// ---------------------------------------------------------------------------------------------
// Sprig and Helm functions

function toInt(v: Value): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  if (typeof v === 'boolean') return v ? 1n : 0n;
  if (typeof v === 'string') {
    const n = Number(v);
    return Number.isFinite(n) ? BigInt(Math.trunc(n)) : 0n;
  }
  return 0n;
}

function toStr(v: Value): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  return printValue(v);
}

/**
 * A string parameter of a Go function (Sprig's b64enc, upper, trimSuffix...): Go's text/template
 * refuses anything else before the call, nil included ("invalid value; expected string"), so a
 * missing value piped into one fails the render as it does in Helm instead of yielding "".
 */
function strParam(v: Value, fn: string): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) throw new TemplateError(`error calling ${fn}: invalid value; expected string`);
  throw new TemplateError(`error calling ${fn}: wrong type for value; expected string; got ${kindOf(v)}`);
}

/** Values as plain JSON-able data (bigint to number), for toYaml and toJson. */
function plain(v: Value): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

function kindOf(v: Value): string {
  if (v === null || v === undefined) return 'invalid';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return 'float64';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'slice';
  return 'map';
}

/**
 * Go's eq (and ne): a nil on one side only is simply not equal (Go 1.18+), never an error; other
 * kinds must match.
 */
function goEqual(a: Value, b: Value, op: string): boolean {
  const [ka, kb] = [kindOf(a), kindOf(b)];
  if (ka === 'invalid' || kb === 'invalid') return ka === kb;
  const [x, y] = comparable(a, b, op);
  return x === y;
}

/** Go template comparison: basic kinds only, and int never compares with float64. */
function comparable(a: Value, b: Value, op: string): [number | bigint | string | boolean, number | bigint | string | boolean] {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka !== kb) throw new TemplateError(`${op}: incompatible types for comparison (${ka} and ${kb})`);
  if (ka === 'slice' || ka === 'map') throw new TemplateError(`${op}: invalid type for comparison (${ka})`);
  return [a as never, b as never];
}

function goPrintf(format: string, args: Value[]): string {
  let i = 0;
  return format.replace(/%([-+# 0]*)(\d*)(?:\.(\d+))?([vdsqtfx%])/g, (_m, _flags: string, _width: string, precision: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    const arg = args[i++];
    switch (verb) {
      case 'd':
        if (typeof arg !== 'bigint') return `%!d(${kindOf(arg)}=${printValue(arg)})`;
        return String(arg);
      case 's':
      case 'v':
        return printValue(arg);
      case 'q':
        return JSON.stringify(toStr(arg));
      case 't':
        return String(Boolean(arg));
      case 'f':
        return typeof arg === 'number' ? arg.toFixed(precision ? Number(precision) : 6) : `%!f(${kindOf(arg)}=${printValue(arg)})`;
      case 'x':
        return Buffer.from(toStr(arg)).toString('hex');
      default:
        return printValue(arg);
    }
  });
}

/** A deterministic stand-in for randAlphaNum, so renders can be compared. */
function pseudoRandomAlphaNum(length: number, seed: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  let block = createHash('sha256').update(seed).digest();
  while (out.length < length) {
    for (const byte of block) if (out.length < length) out += alphabet[byte % alphabet.length];
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function helmFunctions(executor: () => Executor, options: { randomSeed: string }): Record<string, TemplateFunction> {
  let randomCalls = 0;
  const fns: Record<string, TemplateFunction> = {
    // Helm's own
    include: (name, data) => executor().renderNamed(String(name), data, `include "${String(name)}"`),
    tpl: () => {
      throw new TemplateError('tpl is not supported by this renderer');
    },
    required: (message, value) => {
      if (value === null || value === undefined || value === '') throw new TemplateError(String(message));
      return value;
    },
    fail: (message) => {
      throw new TemplateError(`fail: ${String(message)}`);
    },
    lookup: () => ({}),
    toYaml: (v) => {
      if (v === null || v === undefined) return 'null';
      return YAML.stringify(plain(v), { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
    },
    toJson: (v) => JSON.stringify(plain(v) ?? null),
    fromYaml: (s) => YAML.parse(strParam(s, 'fromYaml'), goYamlOptions) ?? {},
    // strings
    quote: (...args) => args.filter((a) => a !== null && a !== undefined).map((a) => JSON.stringify(toStr(a))).join(' '),
    squote: (...args) => args.filter((a) => a !== null && a !== undefined).map((a) => `'${toStr(a)}'`).join(' '),
    indent: (n, s) => {
      const pad = ' '.repeat(Number(toInt(n)));
      return pad + strParam(s, 'indent').replace(/\n/g, `\n${pad}`);
    },
    nindent: (n, s) => {
      const pad = ' '.repeat(Number(toInt(n)));
      return `\n${pad}${strParam(s, 'nindent').replace(/\n/g, `\n${pad}`)}`;
    },
    trim: (s) => strParam(s, 'trim').trim(),
    trimSuffix: (suffix, s) => {
      const [sfx, str] = [strParam(suffix, 'trimSuffix'), strParam(s, 'trimSuffix')];
      return str.endsWith(sfx) && sfx ? str.slice(0, -sfx.length) : str;
    },
    trimPrefix: (prefix, s) => {
      const [pfx, str] = [strParam(prefix, 'trimPrefix'), strParam(s, 'trimPrefix')];
      return str.startsWith(pfx) ? str.slice(pfx.length) : str;
    },
    trunc: (n, s) => {
      const str = strParam(s, 'trunc');
      const c = Number(toInt(n));
      return c >= 0 ? str.slice(0, c) : str.slice(Math.max(0, str.length + c));
    },
    replace: (from, to, s) => strParam(s, 'replace').split(strParam(from, 'replace')).join(strParam(to, 'replace')),
    lower: (s) => strParam(s, 'lower').toLowerCase(),
    upper: (s) => strParam(s, 'upper').toUpperCase(),
    contains: (sub, s) => strParam(s, 'contains').includes(strParam(sub, 'contains')),
    hasPrefix: (prefix, s) => strParam(s, 'hasPrefix').startsWith(strParam(prefix, 'hasPrefix')),
    hasSuffix: (suffix, s) => strParam(s, 'hasSuffix').endsWith(strParam(suffix, 'hasSuffix')),
    printf: (format, ...args) => goPrintf(strParam(format, 'printf'), args),
    print: (...args) => args.map(toStr).join(''),
    toString: (v: Value) => toStr(v),
    join: (sep, list) => (Array.isArray(list) ? list.map(toStr).join(strParam(sep, 'join')) : toStr(list)),
    base: (p) => posix.basename(strParam(p, 'base')),
    dir: (p) => posix.dirname(strParam(p, 'dir')),
    b64enc: (s) => Buffer.from(strParam(s, 'b64enc')).toString('base64'),
    b64dec: (s) => Buffer.from(strParam(s, 'b64dec'), 'base64').toString('utf8'),
    sha256sum: (s) => createHash('sha256').update(strParam(s, 'sha256sum')).digest('hex'),
    randAlphaNum: (n) => pseudoRandomAlphaNum(Number(toInt(n)), `${options.randomSeed}:${randomCalls++}`),
    // defaults and logic
    default: (fallback, ...rest) => {
      const given = rest.length ? rest[rest.length - 1] : undefined;
      return isTrue(given) ? given : fallback;
    },
    empty: (v) => !isTrue(v),
    coalesce: (...args) => args.find((a) => isTrue(a)) ?? null,
    ternary: (a, b, cond) => (cond ? a : b),
    not: (v) => !isTrue(v),
    eq: (a, ...others) => others.some((b) => goEqual(a, b, 'eq')),
    ne: (a, b) => !goEqual(a, b, 'ne'),
    lt: (a, b) => {
      const [x, y] = comparable(a, b, 'lt');
      return x < y;
    },
    le: (a, b) => {
      const [x, y] = comparable(a, b, 'le');
      return x <= y;
    },
    gt: (a, b) => {
      const [x, y] = comparable(a, b, 'gt');
      return x > y;
    },
    ge: (a, b) => {
      const [x, y] = comparable(a, b, 'ge');
      return x >= y;
    },
    kindIs: (kind, v) => kindOf(v) === toStr(kind),
    // numbers (Sprig's math works in int64)
    int: (v) => toInt(v),
    int64: (v) => toInt(v),
    float64: (v) => Number(typeof v === 'bigint' ? Number(v) : v),
    add: (...args) => args.reduce<bigint>((sum, a) => sum + toInt(a), 0n),
    sub: (a, b) => toInt(a) - toInt(b),
    mul: (...args) => args.reduce<bigint>((p, a) => p * toInt(a), 1n),
    div: (a, b) => toInt(a) / toInt(b),
    mod: (a, b) => toInt(a) % toInt(b),
    max: (...args) => args.map(toInt).reduce((m, a) => (a > m ? a : m)),
    min: (...args) => args.map(toInt).reduce((m, a) => (a < m ? a : m)),
    // collections
    dict: (...args) => {
      const out: Record<string, Value> = {};
      for (let i = 0; i < args.length; i += 2) out[toStr(args[i])] = args[i + 1] ?? null;
      return out;
    },
    list: (...args) => args,
    get: (map, key) => (isMap(map) ? (map[toStr(key)] ?? '') : ''),
    set: (map, key, value) => {
      (map as Record<string, Value>)[toStr(key)] = value;
      return map;
    },
    hasKey: (map, key) => isMap(map) && Object.prototype.hasOwnProperty.call(map, toStr(key)),
    keys: (...maps) => maps.flatMap((m) => (isMap(m) ? Object.keys(m) : [])),
    len: (v) => BigInt(typeof v === 'string' || Array.isArray(v) ? v.length : isMap(v) ? Object.keys(v).length : 0),
    index: (v, ...keys) => keys.reduce<Value>((cur, k) => (Array.isArray(cur) ? cur[Number(toInt(k))] : isMap(cur) ? cur[toStr(k)] : null), v),
  };
  return fns;
}

// ---------------------------------------------------------------------------------------------
// The chart

const DEFAULT_API_VERSIONS = [
  'v1',
  'apps/v1',
  'batch/v1',
  'policy/v1',
  'autoscaling/v2',
  'networking.k8s.io/v1',
  'rbac.authorization.k8s.io/v1',
  'coordination.k8s.io/v1',
  'apiextensions.k8s.io/v1',
];

function chartMetadata(chartDir: string): Record<string, unknown> {
  const raw = loadYamlFile(join(chartDir, 'Chart.yaml')) as Record<string, unknown>;
  // Helm exposes Chart.yaml with Go field names: name -> .Chart.Name, appVersion -> .Chart.AppVersion.
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k.charAt(0).toUpperCase() + k.slice(1), v]));
}

export function templateFiles(chartDir: string): string[] {
  return listFiles(join(chartDir, 'templates'));
}

export function renderChart(chartDir: string, options: RenderOptions = {}): RenderResult {
  const chartName = basename(chartDir);
  const defaults = (loadYamlFile(join(chartDir, 'values.yaml')) ?? {}) as Values;
  const values = (options.values ?? []).reduce<Values>((acc, v) => mergeValues(acc, v), defaults);
  const schemaErrors = validateValues(chartDir, values);
  if (schemaErrors.length) throw new ValuesSchemaError(schemaErrors);

  const chartFiles = new Map<string, string>();
  for (const path of listFiles(chartDir)) {
    const rel = relative(chartDir, path).split(sep).join('/');
    if (rel.startsWith('templates/') || rel === 'Chart.yaml' || rel === 'values.yaml') continue;
    chartFiles.set(rel, readFileSync(path, 'utf8'));
  }
  const files = {
    Get: (path: Value) => chartFiles.get(toStr(path)) ?? '',
    Glob: (pattern: Value) => {
      const re = globToRegExp(toStr(pattern));
      return Object.fromEntries([...chartFiles].filter(([path]) => re.test(path)));
    },
  };
  const apiVersions = options.apiVersions ?? DEFAULT_API_VERSIONS;
  const releaseName = options.releaseName ?? 'release-name';
  const namespace = options.namespace ?? 'default';
  const valuePathsRead = new Set<string>();

  const templates = templateFiles(chartDir).map((path) => {
    const name = `${chartName}/${relative(chartDir, path).split(sep).join('/')}`;
    return parseTemplate(readFileSync(path, 'utf8'), name);
  });
  const defines = new Map<string, ReturnType<typeof parseTemplate>['root']>();
  for (const t of templates) for (const [name, body] of t.defines) defines.set(name, body);

  // The functions need the executor (include) and the executor the functions: the closure breaks the cycle.
  const executor: Executor = new Executor({
    functions: helmFunctions(() => executor, { randomSeed: releaseName }),
    defines,
    onField: (path) => {
      if (path[0] === 'Values' && path.length > 1) valuePathsRead.add(path.slice(1).join('.'));
    },
  });

  const rendered: RenderedFile[] = [];
  let notes = '';
  for (const t of templates) {
    const base = posix.basename(t.name);
    if (base.startsWith('_')) continue;
    const root = {
      Values: values,
      Release: { Name: releaseName, Namespace: namespace, Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1n },
      Chart: chartMetadata(chartDir),
      Files: files,
      Capabilities: {
        KubeVersion: { Version: 'v1.31.0', Major: '1', Minor: '31', GitVersion: 'v1.31.0' },
        APIVersions: { Has: (version: Value) => apiVersions.includes(toStr(version)) },
      },
      Template: { Name: t.name, BasePath: `${chartName}/templates` },
    };
    const text = executor.render(t.root, root).replace(/<no value>/g, '');
    if (base === 'NOTES.txt') notes = text;
    else rendered.push({ name: t.name, text });
  }

  const objects: Record<string, unknown>[] = [];
  const objectsByFile = new Map<string, Record<string, unknown>[]>();
  for (const file of rendered) {
    const docs = YAML.parseAllDocuments(file.text, goYamlOptions);
    const list: Record<string, unknown>[] = [];
    for (const doc of docs) {
      if (doc.errors.length) {
        throw new TemplateError(`${file.name}: the rendered YAML does not parse: ${doc.errors.map((e) => e.message).join('; ')}\n--- rendered ---\n${file.text}`);
      }
      const obj = doc.toJS() as unknown;
      if (obj === null || obj === undefined) continue;
      if (!isMap(obj)) throw new TemplateError(`${file.name}: a rendered document is not a mapping`);
      list.push(obj);
    }
    objectsByFile.set(file.name, list);
    objects.push(...list);
  }
  return { files: rendered, objects, objectsByFile, notes, valuePathsRead, values };
}
