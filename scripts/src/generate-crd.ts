/**
 * `npm run generate:crd`: writes the SocketBridge CRD's `spec` schema from the one bridge schema
 * (services/common/src/bridge-schema.ts) into both CRD files. Only the `spec:` block under
 * `openAPIV3Schema.properties` is replaced; the header, metadata, printer columns and status
 * schema are kept as written. scripts/test/generate-crd.test.ts fails when a file is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { SocketBridgeSpecSchema, plainSchema } from '@socketbridge/common';

export const CRD_FILES = ['manifests/crd/socketbridge.io_socketbridges.yaml', 'charts/socketbridge/crds/socketbridge.io_socketbridges.yaml'].map((file) =>
  fileURLToPath(new URL(`../../${file}`, import.meta.url)),
);

type Node = Record<string, unknown>;

/**
 * The keywords a structural schema may carry here, in the order the CRD writes them. Anything
 * else (`$ref`, `anyOf`, a TypeBox union) is an error rather than a CRD the API server refuses.
 */
const ORDER = ['type', 'format', 'description', 'required', 'minLength', 'maxLength', 'pattern', 'minimum', 'maximum', 'minItems', 'maxItems', 'enum', 'default', 'x-kubernetes-validations', 'items', 'properties'];

/** The schema as a CRD wants it: keys in ORDER, `type` on every node, no `additionalProperties`. */
export function crdNode(schema: Node, path = 'spec'): Node {
  const { additionalProperties: _strictForRest, ...rest } = schema;
  const unknown = Object.keys(rest).filter((key) => !ORDER.includes(key));
  if (unknown.length) throw new Error(`${path}: ${unknown.join(', ')} cannot go into a structural CRD schema`);
  if (typeof rest.type !== 'string') throw new Error(`${path}: every node of a structural schema needs a type`);
  const node: Node = {};
  for (const key of ORDER.filter((k) => k in rest)) {
    const value = rest[key];
    if (key === 'items') node.items = crdNode(value as Node, `${path}[]`);
    else if (key === 'properties') node.properties = Object.fromEntries(Object.entries(value as Record<string, Node>).map(([k, v]) => [k, crdNode(v, `${path}.${k}`)]));
    else node[key] = value;
  }
  return node;
}

const WIDTH = 110;

function readsBack(plain: string): boolean {
  try {
    return isDeepStrictEqual(parse(`k: ${plain}`), { k: plain });
  } catch {
    return false;
  }
}

/** A string as YAML after `key: `: plain where YAML reads it back unchanged, else folded (`>-`). */
function scalar(key: string, value: unknown, indent: number): string[] {
  if (typeof value !== 'string') return [String(value)];
  if (value === '') return ['""'];
  if (key === 'pattern') return [`'${value.replace(/'/g, "''")}'`];
  if (key === 'rule' || key === 'message') return [JSON.stringify(value)];
  if (readsBack(value)) return [value];
  const lines: string[] = [];
  for (const word of value.split(' ')) {
    const last = lines.at(-1);
    if (last !== undefined && indent + 2 + last.length + 1 + word.length <= WIDTH) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return ['>-', ...lines.map((line) => `${' '.repeat(indent + 2)}${line}`)];
}

function entry(key: string, value: unknown, indent: number): string[] {
  const pad = ' '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== 'object')) return [`${pad}${key}: [${value.map((v) => scalar('', v, 0)[0]).join(', ')}]`];
    return [`${pad}${key}:`, ...value.flatMap((item: Node) => mapping(item, indent + 4).map((line, i) => (i === 0 ? `${pad}  - ${line.trimStart()}` : line)))];
  }
  if (value && typeof value === 'object') return Object.keys(value).length ? [`${pad}${key}:`, ...mapping(value as Node, indent + 2)] : [`${pad}${key}: {}`];
  const [first, ...more] = scalar(key, value, indent);
  return [`${pad}${key}: ${first}`, ...more];
}

function mapping(node: Node, indent: number): string[] {
  return Object.entries(node).flatMap(([key, value]) => entry(key, value, indent));
}

/** The CRD text with its `spec` schema replaced by the generated one. */
export function generateCrd(text: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((line, i) => /^\s+spec:$/.test(line) && lines.slice(0, i).some((l) => l.trim() === 'openAPIV3Schema:'));
  if (start < 0) throw new Error('the CRD has no openAPIV3Schema.properties.spec');
  const indent = lines[start]!.length - 'spec:'.length;
  let end = start + 1;
  while (end < lines.length && (lines[end]!.trim() === '' || lines[end]!.length - lines[end]!.trimStart().length > indent)) end++;
  const spec = crdNode(plainSchema(SocketBridgeSpecSchema));
  const result = [...lines.slice(0, start), ...entry('spec', spec, indent), ...lines.slice(end)].join('\n');
  // The emitter is small; reading its output back proves it wrote what the schema says.
  const written = (parse(result) as { spec: { versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: unknown } } } }> } }).spec.versions[0]!.schema.openAPIV3Schema.properties.spec;
  if (!isDeepStrictEqual(written, spec)) throw new Error('the generated CRD does not read back as the bridge schema');
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Both files from the first, so the chart's copy cannot drift from manifests/crd/.
  const generated = generateCrd(readFileSync(CRD_FILES[0]!, 'utf8'));
  for (const file of CRD_FILES) writeFileSync(file, generated);
  console.log(`wrote ${CRD_FILES.join(' and ')}`);
}
