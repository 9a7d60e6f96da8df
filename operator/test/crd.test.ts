import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { bridgeProblems } from '@socketbridge/common';
import { repoRoot } from '@socketbridge/devkit';
import { toBridge } from '../src/bridge.js';
import { CRD_PATH, celProblems, celProgram, celRules, crdSchema, validateDocument, type JsonSchema } from '../src/crd.js';
import { readManifests } from '../src/files.js';
import type {
  BindingSpec,
  ChannelSpec,
  Condition,
  DeletionPolicy,
  ExchangeType,
  HistorySpec,
  QueueSpec,
  QueueStatus,
  QuorumSpec,
  RabbitMQSpec,
  RouteSpec,
  SecretRef,
  SocketBridge,
  SocketBridgeSpec,
  SocketBridgeStatus,
  StreamSpec,
} from '../src/resource.js';

const schema = crdSchema();
const examplesDir = join(repoRoot, 'manifests/examples');
const fixturesDir = join(repoRoot, 'operator/test/fixtures');

/**
 * For each TypeScript type, which of its fields are optional. `satisfies` makes the compiler check
 * these tables against the types (every field listed, the right kind); the tests below check them
 * against the CRD's `required` lists. Together: the types and the CRD agree.
 */
type Optionality<T> = { [K in keyof T]-?: object extends Pick<T, K> ? 'optional' : 'required' };

const tables: Record<string, Record<string, 'optional' | 'required'>> = {
  spec: { rabbitmq: 'optional', queues: 'required', channels: 'optional', deletionPolicy: 'optional' } satisfies Optionality<SocketBridgeSpec>,
  'spec.rabbitmq': { connectionSecret: 'optional' } satisfies Optionality<RabbitMQSpec>,
  'spec.rabbitmq.connectionSecret': { name: 'required' } satisfies Optionality<SecretRef>,
  'spec.queues[]': {
    name: 'required',
    durable: 'optional',
    singleActiveConsumer: 'optional',
    type: 'optional',
    quorum: 'optional',
    stream: 'optional',
    bindings: 'optional',
    route: 'required',
  } satisfies Optionality<QueueSpec>,
  'spec.queues[].quorum': { deliveryLimit: 'optional', initialGroupSize: 'optional' } satisfies Optionality<QuorumSpec>,
  'spec.queues[].stream': { maxLengthBytes: 'optional', maxAge: 'optional', segmentSizeBytes: 'optional' } satisfies Optionality<StreamSpec>,
  'spec.queues[].bindings[]': { exchange: 'required', type: 'required', routingKey: 'optional' } satisfies Optionality<BindingSpec>,
  'spec.queues[].route': { channel: 'required' } satisfies Optionality<RouteSpec>,
  'spec.channels[]': { pattern: 'required', access: 'required', history: 'optional', presence: 'optional' } satisfies Optionality<ChannelSpec>,
  'spec.channels[].history': { size: 'optional', ttlSeconds: 'optional' } satisfies Optionality<HistorySpec>,
  status: { observedGeneration: 'optional', queuesReady: 'optional', conditions: 'optional', queues: 'optional' } satisfies Optionality<SocketBridgeStatus>,
  'status.conditions[]': {
    type: 'required',
    status: 'required',
    reason: 'optional',
    message: 'optional',
    lastTransitionTime: 'required',
    observedGeneration: 'optional',
  } satisfies Optionality<Condition>,
  'status.queues[]': { name: 'required', ready: 'required', messages: 'optional', consumers: 'optional' } satisfies Optionality<QueueStatus>,
};

/** The enums, as TypeScript literal unions (a missing or extra value fails to compile). */
const enums: Record<string, string[]> = {
  'spec.queues[].bindings[].type': Object.keys({ direct: 1, topic: 1, fanout: 1, headers: 1 } satisfies Record<ExchangeType, 1>),
  'spec.queues[].type': Object.keys({ classic: 1, quorum: 1, stream: 1 } satisfies Record<NonNullable<QueueSpec['type']>, 1>),
  'spec.channels[].access': Object.keys({ public: 1, authenticated: 1, owner: 1 } satisfies Record<ChannelSpec['access'], 1>),
  'spec.deletionPolicy': Object.keys({ retain: 1, delete: 1 } satisfies Record<DeletionPolicy, 1>),
  'status.conditions[].status': Object.keys({ True: 1, False: 1, Unknown: 1 } satisfies Record<Condition['status'], 1>),
};

/** Every object schema under spec and status, by path. */
function objectSchemas(node: JsonSchema, path: string, into: Map<string, JsonSchema> = new Map()): Map<string, JsonSchema> {
  if (node.type === 'object' && node.properties) into.set(path, node);
  for (const [key, child] of Object.entries(node.properties ?? {})) objectSchemas(child, path ? `${path}.${key}` : key, into);
  if (node.items) objectSchemas(node.items, `${path}[]`, into);
  return into;
}

function at(path: string): JsonSchema {
  let node: JsonSchema | undefined = schema;
  for (const part of path.split('.')) {
    const array = part.endsWith('[]');
    node = node?.properties?.[array ? part.slice(0, -2) : part];
    if (array) node = node?.items;
  }
  if (!node) throw new Error(`no schema at ${path}`);
  return node;
}

/** A SocketBridge with every field the CRD knows set, typed: it must validate, and cover every field. */
const full: SocketBridge = {
  apiVersion: 'socketbridge.io/v1alpha1',
  kind: 'SocketBridge',
  metadata: { name: 'everything', namespace: 'default' },
  spec: {
    rabbitmq: { connectionSecret: { name: 'rabbitmq-credentials' } },
    queues: [
      {
        name: 'everything.q',
        durable: false,
        singleActiveConsumer: true,
        bindings: [{ exchange: 'everything', type: 'headers', routingKey: '' }],
        route: { channel: 'e.{headers.region}.{body.id}' },
      },
      {
        name: 'everything.quorum',
        type: 'quorum',
        quorum: { deliveryLimit: 5, initialGroupSize: 3 },
        route: { channel: 'e.{routingKey}' },
      },
      {
        name: 'everything.stream',
        type: 'stream',
        stream: { maxLengthBytes: 1_000_000_000, maxAge: '7D', segmentSizeBytes: 100_000_000 },
        route: { channel: 'e.{routingKey}' },
      },
    ],
    channels: [{ pattern: 'e.{clientId}.#', access: 'owner', history: { size: 10, ttlSeconds: 60 }, presence: true }],
    deletionPolicy: 'delete',
  },
  status: {
    observedGeneration: 3,
    queuesReady: '1/1',
    conditions: [{ type: 'Ready', status: 'True', reason: 'Reconciled', message: '', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 3 }],
    queues: [{ name: 'everything.q', ready: true, messages: 0, consumers: 2 }],
  },
};

function leafPaths(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => leafPaths(item, `${path}[]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => leafPaths(v, path ? `${path}.${k}` : k));
  return [path];
}

function schemaLeafPaths(node: JsonSchema, path = ''): string[] {
  if (node.properties && Object.keys(node.properties).length) return Object.entries(node.properties).flatMap(([k, v]) => schemaLeafPaths(v, path ? `${path}.${k}` : k));
  if (node.items) return schemaLeafPaths(node.items, `${path}[]`);
  return [path];
}

describe('the CRD', () => {
  it('is one v1alpha1 SocketBridge CRD with the status subresource, printer columns and a short name', () => {
    const crd = parse(readFileSync(CRD_PATH, 'utf8')) as {
      metadata: { name: string };
      spec: { group: string; scope: string; names: Record<string, unknown>; versions: Array<Record<string, unknown>> };
    };
    expect(crd.metadata.name).toBe('socketbridges.socketbridge.io');
    expect(crd.spec).toMatchObject({ group: 'socketbridge.io', scope: 'Namespaced', names: { kind: 'SocketBridge', plural: 'socketbridges', shortNames: ['sbr'] } });
    expect(crd.spec.versions).toHaveLength(1);
    const version = crd.spec.versions[0]!;
    expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
    expect((version.additionalPrinterColumns as Array<{ name: string }>).map((c) => c.name)).toEqual(['Ready', 'Queues', 'Age', 'Message']);
  });

  it('has defaults and a CEL rule for every rule that spans fields', () => {
    expect(at('spec.queues[].durable').default).toBe(true);
    expect(at('spec.queues[].singleActiveConsumer').default).toBe(false);
    expect(at('spec.deletionPolicy').default).toBe('retain');
    expect(at('spec.queues[].bindings[].routingKey').default).toBe('');
    expect(celRules(schema).map((r) => `${r.path}: ${r.message}`)).toEqual([
      '(root): metadata.name must be a DNS label (at most 63 characters, no dots): it names the bridge in the registry',
      'spec.queues: queue names must be unique within a SocketBridge',
      'spec.queues[]: quorum and stream queues are always durable',
      'spec.queues[]: quorum settings need type quorum',
      'spec.queues[]: stream settings need type stream',
      'spec.queues[]: a stream queue has no single active consumer over AMQP 0-9-1',
      'spec.queues[].name: queue names starting with amq. are reserved by RabbitMQ',
      'spec.channels: channel patterns must be unique within a SocketBridge',
      'spec.channels[]: owner access needs a {clientId} segment in the pattern',
    ]);
  });
});

describe('the TypeScript types stay in step with the CRD', () => {
  it('every object in the schema has a table, and each table lists exactly its fields with the same required/optional split', () => {
    const objects = objectSchemas(schema, '');
    const covered = [...objects.keys()].filter((path) => path.startsWith('spec') || path.startsWith('status'));
    expect(covered.sort()).toEqual(Object.keys(tables).sort());
    for (const [path, table] of Object.entries(tables)) {
      const node = objects.get(path)!;
      expect(Object.keys(table).sort(), `fields of ${path}`).toEqual(Object.keys(node.properties!).sort());
      const required = Object.entries(table).filter(([, kind]) => kind === 'required').map(([key]) => key);
      expect(required.sort(), `required fields of ${path}`).toEqual([...(node.required ?? [])].sort());
      // A field with a default is optional to write.
      for (const [key, child] of Object.entries(node.properties!)) if (child.default !== undefined) expect(table[key], `${path}.${key} has a default`).toBe('optional');
    }
  });

  it('the enums match the literal unions', () => {
    for (const [path, values] of Object.entries(enums)) expect(at(path).enum, path).toEqual(values);
  });

  it('a typed fixture with every field validates against the CRD schema and touches every field it has', () => {
    const result = validateDocument(full);
    expect(result.ok ? [] : result.errors).toEqual([]);
    expect(new Set(leafPaths(full).filter((p) => p.startsWith('spec') || p.startsWith('status')))).toEqual(
      new Set(schemaLeafPaths(schema).filter((p) => p.startsWith('spec') || p.startsWith('status'))),
    );
  });

  it('local mode applies the CRD defaults', () => {
    const result = validateDocument({ apiVersion: 'socketbridge.io/v1alpha1', kind: 'SocketBridge', metadata: { name: 'd' }, spec: { queues: [{ name: 'd.q', route: { channel: 'd.{routingKey}' } }], channels: [{ pattern: 'd.*', access: 'public', history: { size: 5 } }] } });
    expect(result.ok && result.resource.spec).toEqual({
      queues: [{ name: 'd.q', durable: true, singleActiveConsumer: false, type: 'classic', bindings: [], route: { channel: 'd.{routingKey}' } }],
      channels: [{ pattern: 'd.*', access: 'public', history: { size: 5, ttlSeconds: 3600 }, presence: false }],
      deletionPolicy: 'retain',
    });
  });
});

describe('manifests/examples', () => {
  const files = readdirSync(examplesDir).filter((f) => /\.ya?ml$/.test(f));
  const { documents, errors } = readManifests([examplesDir]);

  it('every example is a valid SocketBridge, for the schema, its CEL rules and the operator', () => {
    expect(errors).toEqual([]);
    expect(files.length).toBeGreaterThanOrEqual(2);
    expect(documents.length).toBeGreaterThanOrEqual(files.length);
    for (const { where, value } of documents) {
      const result = validateDocument(value);
      expect(result.ok ? [] : result.errors, where).toEqual([]);
      if (result.ok) expect(bridgeProblems(toBridge(result.resource.metadata.name!, result.resource.spec)), where).toEqual([]);
    }
  });

  it('show a topic exchange with public and authenticated channels with history, and an ordered queue', () => {
    const specs = documents.map(({ value }) => (value as SocketBridge).spec);
    const queues = specs.flatMap((s) => s.queues);
    expect(queues.some((q) => q.bindings?.some((b) => b.type === 'topic'))).toBe(true);
    expect(queues.some((q) => q.singleActiveConsumer === true)).toBe(true);
    const channels = specs.flatMap((s) => s.channels ?? []);
    expect(channels.some((c) => c.access === 'public' && c.history)).toBe(true);
    expect(channels.some((c) => c.access === 'authenticated' && c.history)).toBe(true);
    expect(channels.some((c) => c.access === 'owner')).toBe(true);
  });
});

describe('broken documents are refused with messages a person can act on', () => {
  function problems(file: string): string[] {
    const { documents, errors } = readManifests([join(fixturesDir, file)]);
    return [...errors.map((e) => e.replace(`${fixturesDir}/`, '')), ...documents.flatMap(({ value }) => {
      const result = validateDocument(value);
      return result.ok ? [] : result.errors;
    })];
  }

  it.each([
    ['bad-exchange-type.yaml', ['spec.queues[0].bindings[0].type: must be one of direct, topic, fanout, headers (got "topc")']],
    ['missing-route.yaml', ['spec.queues[0].route: required field missing', 'spec.queues[0].bindings[0].exchange: required field missing']],
    ['unknown-field.yaml', ['spec.deletePolicy: unknown field (did you mean deletionPolicy?)', 'spec.queues[0].singleActiveConsumers: unknown field (did you mean singleActiveConsumer?)']],
    [
      'wrong-types.yaml',
      [
        'spec.queues[0].durable: must be a boolean (got "yes")',
        'spec.channels[0].access: must be one of public, authenticated, owner (got "private")',
        'spec.channels[0].history.size: must be at least 1 (got 0)',
        'spec.deletionPolicy: must be one of retain, delete (got "purge")',
      ],
    ],
    ['no-queues.yaml', ['spec.queues: needs at least 1 item']],
    [
      'wrong-kind.yaml',
      [
        'apiVersion: must be socketbridge.io/v1alpha1 (got "v1")',
        'kind: must be SocketBridge (got "Bridge")',
        'metadata.name: "Market_Data" is not allowed here (a DNS label: lower-case letters, digits and -, at most 63 characters)',
      ],
    ],
    ['yaml-syntax.yaml', ['yaml-syntax.yaml: YAML error at line 5, column 1: Flow map in block collection must be sufficiently indented and end with a } at line 5, column 1']],
  ])('%s', (file, expected) => {
    expect(problems(file)).toEqual(expected);
  });

  // Each CEL rule of the CRD, evaluated from the CRD file by a CEL implementation (@marcbachmann/cel-js), as local mode checks it.
  const celFixtures: Record<string, [string, string]> = {
    'metadata.name must be a DNS label (at most 63 characters, no dots): it names the bridge in the registry': [
      'cel-dotted-name.yaml',
      'metadata.name: "market.data" is not allowed here (a DNS label: lower-case letters, digits and -, at most 63 characters)',
    ],
    'queue names must be unique within a SocketBridge': ['cel-duplicate-queues.yaml', 'spec.queues: queue names must be unique within a SocketBridge'],
    'queue names starting with amq. are reserved by RabbitMQ': ['cel-amq-queue.yaml', 'spec.queues[0].name: queue names starting with amq. are reserved by RabbitMQ (got "amq.prices")'],
    'channel patterns must be unique within a SocketBridge': ['cel-duplicate-patterns.yaml', 'spec.channels: channel patterns must be unique within a SocketBridge'],
    'owner access needs a {clientId} segment in the pattern': ['cel-owner-without-clientid.yaml', 'spec.channels[0]: owner access needs a {clientId} segment in the pattern'],
    'quorum and stream queues are always durable': ['cel-transient-quorum.yaml', 'spec.queues[0]: quorum and stream queues are always durable'],
    'quorum settings need type quorum': ['cel-quorum-settings-on-classic.yaml', 'spec.queues[0]: quorum settings need type quorum'],
    'stream settings need type stream': ['cel-stream-settings-on-quorum.yaml', 'spec.queues[0]: stream settings need type stream'],
    'a stream queue has no single active consumer over AMQP 0-9-1': ['cel-stream-single-active.yaml', 'spec.queues[0]: a stream queue has no single active consumer over AMQP 0-9-1'],
  };

  // Each rule on its own, as the API server binds `self`: a value it accepts and one it refuses.
  const celCases: Record<string, { pass: unknown; fail: unknown }> = {
    'metadata.name must be a DNS label (at most 63 characters, no dots): it names the bridge in the registry': {
      pass: { metadata: { name: 'market-data' } },
      fail: { metadata: { name: 'market.data' } },
    },
    'queue names must be unique within a SocketBridge': { pass: [{ name: 'a' }, { name: 'b' }], fail: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] },
    'queue names starting with amq. are reserved by RabbitMQ': { pass: 'prices.amq', fail: 'amq.prices' },
    'channel patterns must be unique within a SocketBridge': { pass: [{ pattern: 'a.*' }, { pattern: 'b.*' }], fail: [{ pattern: 'a.*' }, { pattern: 'a.*' }] },
    'owner access needs a {clientId} segment in the pattern': {
      pass: { pattern: 'orders.{clientId}', access: 'owner' },
      fail: { pattern: 'orders.*', access: 'owner' },
    },
    'quorum and stream queues are always durable': { pass: { type: 'quorum', durable: true }, fail: { type: 'stream', durable: false } },
    'quorum settings need type quorum': { pass: { type: 'quorum', quorum: { deliveryLimit: 3 } }, fail: { quorum: { deliveryLimit: 3 } } },
    'stream settings need type stream': { pass: { type: 'stream', stream: { maxAge: '1D' } }, fail: { type: 'quorum', stream: { maxAge: '1D' } } },
    'a stream queue has no single active consumer over AMQP 0-9-1': {
      pass: { type: 'quorum', singleActiveConsumer: true },
      fail: { type: 'stream', singleActiveConsumer: true },
    },
  };

  it.each(Object.entries(celCases))('the CEL rule "%s" passes one object and fails another', (message, { pass, fail }) => {
    const rule = celRules(schema).find((r) => r.message === message)!.rule;
    expect(celProgram(rule)({ self: pass })).toBe(true);
    expect(celProgram(rule)({ self: fail })).toBe(false);
  });

  it('a rule on a node that is absent is not evaluated; a present one is, at every element of a list', () => {
    const spec = { queues: [{ name: 'amq.a', route: { channel: 'x' } }, { name: 'b', route: { channel: 'x' } }, { name: 'amq.c', route: { channel: 'x' } }] };
    expect(celProblems(schema, { apiVersion: 'socketbridge.io/v1alpha1', kind: 'SocketBridge', metadata: { name: 'n' }, spec })).toEqual([
      'spec.queues[0].name: queue names starting with amq. are reserved by RabbitMQ (got "amq.a")',
      'spec.queues[2].name: queue names starting with amq. are reserved by RabbitMQ (got "amq.c")',
    ]);
  });

  it('every CEL rule in the CRD has a fixture local mode refuses and a case of its own', () => {
    const messages = celRules(schema).map((r) => r.message);
    expect(Object.keys(celCases).sort()).toEqual([...messages].sort());
    expect(Object.keys(celFixtures).sort()).toEqual([...messages].sort());
    for (const [file, expected] of Object.values(celFixtures)) expect(problems(file), file).toEqual([expected]);
  });

  it('a spec valid for the schema and its CEL rules can still be one the operator refuses (Ready=False, InvalidSpec)', () => {
    expect(problems('template-unknown-field.yaml')).toEqual([]);
    const { documents } = readManifests([join(fixturesDir, 'template-unknown-field.yaml')]);
    const resource = documents[0]!.value as SocketBridge;
    expect(bridgeProblems(toBridge('bad-template', resource.spec))).toEqual([
      'queue bad-template.q: route prices.{payload.symbol} names {payload.symbol}; use {routingKey}, {headers.<name>} or {body.<field>}',
    ]);
  });

  it('every fixture is used by a test', () => {
    const used = new Set([
      'bad-exchange-type.yaml',
      'missing-route.yaml',
      'unknown-field.yaml',
      'wrong-types.yaml',
      'no-queues.yaml',
      'wrong-kind.yaml',
      'yaml-syntax.yaml',
      'template-unknown-field.yaml',
      ...Object.values(celFixtures).map(([file]) => file),
    ]);
    expect(readdirSync(fixturesDir).sort()).toEqual([...used].sort());
  });
});
