import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { waitFor, type ManagedProcess } from '@socketbridge/devkit';
import type { FakeApiServer } from './support/fake-apiserver.js';
import type { KubeUser } from './support/kube.js';
import { RABBITMQ_URL, type RabbitAdmin, proxiedUrl, uniqueId } from './support/services.js';
import type { TcpProxy } from './support/tcp-proxy.js';
import { OperatorTestBed } from './support/test-bed.js';
import { redactUrl } from '@socketbridge/common';
import { OWNERS_KEY } from '../src/reconciler.js';
import { FINALIZER, readyCondition, type SocketBridgeSpec } from '../src/resource.js';

// The Kubernetes side is a stand-in (test/support/fake-apiserver.ts): no real API server runs here.
const id = uniqueId();
const ns = `t${id}`;
const exchange = `opc-${id}.market`;
const clashExchange = `opc-${id}.clash`;
const q = (name: string) => `opc-${id}.${name}`;
const queueNames = ['md', 'dup', 'tpl', 'clash', 'down', 'w1', 'w2', 'w3', 'secret', 'kept', 'gone'].map(q);

const bed = new OperatorTestBed({ namespaces: [ns], queues: queueNames, exchanges: [exchange, clashExchange], proxy: true });
let fake: FakeApiServer, user: KubeUser, proxy: TcpProxy, rabbit: RabbitAdmin, redis: Redis;
let operator: ManagedProcess;

function simpleSpec(queue: string, extra: Partial<SocketBridgeSpec> = {}): SocketBridgeSpec {
  return {
    rabbitmq: { connectionSecret: { name: 'rabbitmq' } },
    queues: [{ name: queue, bindings: [{ exchange, type: 'topic', routingKey: `${queue}.#` }], route: { channel: 'c.{routingKey}' } }],
    ...extra,
  };
}

async function registryEntry(name: string) {
  const text = await redis.hget(registryKeys.bridges, `${ns}-${name}`);
  return text ? (JSON.parse(text) as { queues: Array<{ bindings: unknown[] }> }) : undefined;
}

function logCount(process: ManagedProcess, msg: string): number {
  return process.lines.filter((line) => line.msg === msg).length;
}

beforeAll(async () => {
  ({ fake, user, proxy, rabbit, redis } = await bed.start());
  await user.createSecret(ns, 'rabbitmq-proxied', proxiedUrl(proxy.port));
  operator = bed.operator('op-1');
  await operator.waitForLog((l) => l.msg === 'became the leader', 20000, 'op-1 to lead');
  await operator.waitForLog((l) => l.msg === 'listed socketbridges', 20000, 'op-1 to list socketbridges');
});

afterAll(() => bed.stop());

describe('the controller, through @kubernetes/client-node against a fake API server', () => {
  it('create: adds the finalizer, declares everything, sets Ready=True with observedGeneration and records an Event', async () => {
    const created = await user.create(ns, 'md', simpleSpec(q('md'), { channels: [{ pattern: 'c.#', access: 'public' }] }));
    expect(created.metadata.generation).toBe(1);
    const ready = await user.waitForReady(ns, 'md', 'True');
    expect(ready.metadata.finalizers).toEqual([FINALIZER]);
    expect(ready.status).toMatchObject({
      observedGeneration: 1,
      queuesReady: '1/1',
      queues: [{ name: q('md'), ready: true }],
      conditions: [{ type: 'Ready', status: 'True', reason: 'Reconciled', message: '', observedGeneration: 1, lastTransitionTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) }],
    });
    // Counts are metrics, not status (a busy queue's counts would make every resync a write).
    expect(ready.status?.queues).toEqual([{ name: q('md'), ready: true }]);
    expect(await registryEntry('md')).toMatchObject({ name: `${ns}-md`, channels: [{ pattern: 'c.#', access: 'public' }] });
    expect(await redis.hget(OWNERS_KEY, `${ns}-md`)).toBe(`${ns}/md`);
    expect(await rabbit.routes(exchange, `${q('md')}.x`)).toBe(true);
    await waitFor(() => user.events(ns, 'md').some((e) => e.reason === 'Reconciled'), 5000, 'the Reconciled event');
    expect(user.events(ns, 'md').find((e) => e.reason === 'Reconciled')).toMatchObject({ type: 'Normal', reportingInstance: 'op-1', message: expect.stringContaining(`declared queue ${q('md')}`) });
    // Status goes through the status subresource, as merge patches.
    const statusWrites = fake.requests.filter((r) => r.path === `/apis/socketbridge.io/v1alpha1/namespaces/${ns}/socketbridges/md/status`);
    expect(statusWrites.length).toBeGreaterThan(0);
    expect(statusWrites.every((r) => r.method === 'PATCH' && r.contentType === 'application/merge-patch+json')).toBe(true);
  });

  it('spec change: applies the diff and observedGeneration follows', async () => {
    const patched = await user.patchSpec(ns, 'md', { queues: [{ name: q('md'), bindings: [{ exchange, type: 'topic', routingKey: 'quote.#' }], route: { channel: 'c.{routingKey}' } }] });
    expect(patched.metadata.generation).toBe(2);
    const ready = await user.waitForReady(ns, 'md', 'True', 20000, (b) => b.status?.observedGeneration === 2);
    expect(readyCondition(ready.status)?.observedGeneration).toBe(2);
    expect(await rabbit.routes(exchange, `${q('md')}.x`)).toBe(false);
    expect(await rabbit.routes(exchange, 'quote.x')).toBe(true);
    expect((await registryEntry('md'))?.queues[0]?.bindings).toEqual([{ exchange, type: 'topic', routingKey: 'quote.#' }]);
  });

  it('resync repairs drift: a queue deleted by hand comes back', async () => {
    await rabbit.deleteQueue(q('md'));
    expect(await rabbit.queue(q('md'))).toBeUndefined();
    await waitFor(async () => (await rabbit.queue(q('md'))) !== undefined, 15000, 'the queue to be declared again');
    expect(await rabbit.routes(exchange, 'quote.x')).toBe(true);
    await waitFor(() => user.events(ns, 'md').some((e) => e.message === `1 of 1 queue ready: declared queue ${q('md')}`), 5000, 'an event saying so');
  });

  it('invalid but schema-valid specs: Ready=False with a clear message, and nothing touched', async () => {
    await rabbit.declareExchange(clashExchange, 'direct');
    // Duplicate queue names break a CEL rule of the CRD: the API server (the stand-in evaluates the CRD's rules) refuses the object.
    await expect(
      user.create(ns, 'dup', {
        rabbitmq: { connectionSecret: { name: 'rabbitmq' } },
        queues: [
          { name: q('dup'), bindings: [{ exchange, type: 'topic', routingKey: 'dup.#' }], route: { channel: 'c.{routingKey}' } },
          { name: q('dup'), route: { channel: 'd.{routingKey}' } },
        ],
      }),
    ).rejects.toMatchObject({ code: 422, body: expect.stringContaining('spec.queues: queue names must be unique within a SocketBridge') });
    expect(await user.get(ns, 'dup')).toBeUndefined();
    await user.create(ns, 'tpl', {
      rabbitmq: { connectionSecret: { name: 'rabbitmq' } },
      queues: [{ name: q('tpl'), bindings: [{ exchange, type: 'topic', routingKey: 'tpl.#' }], route: { channel: 'prices.{bodyy.symbol}' } }],
    });
    await user.create(ns, 'clash', {
      rabbitmq: { connectionSecret: { name: 'rabbitmq' } },
      queues: [{ name: q('clash'), bindings: [{ exchange: clashExchange, type: 'topic', routingKey: 'x.#' }], route: { channel: 'c.{routingKey}' } }],
    });
    const tpl = await user.waitForReady(ns, 'tpl', 'False');
    const clash = await user.waitForReady(ns, 'clash', 'False');
    expect(readyCondition(tpl.status)).toMatchObject({
      reason: 'InvalidSpec',
      message: `queue ${q('tpl')}: route prices.{bodyy.symbol} names {bodyy.symbol}; use {routingKey}, {headers.<name>} or {body.<field>}`,
    });
    expect(readyCondition(clash.status)).toMatchObject({ reason: 'ExchangeClash', message: `exchange ${clashExchange} already exists with type direct; the spec binds it as topic` });
    for (const bridge of [tpl, clash]) {
      expect(bridge.status?.observedGeneration).toBeUndefined();
      expect(await registryEntry(bridge.metadata.name!)).toBeUndefined();
    }
    for (const queue of [q('dup'), q('tpl'), q('clash')]) expect(await rabbit.queue(queue)).toBeUndefined();
    expect(await rabbit.routes(exchange, 'dup.x')).toBe(false);
    // The clashing exchange is still the direct exchange it was.
    await rabbit.declareExchange(clashExchange, 'direct');
    expect(await rabbit.exchangeExists(clashExchange)).toBe(true);
    await waitFor(() => ['tpl', 'clash'].every((name) => user.events(ns, name).some((e) => e.type === 'Warning')), 5000, 'warning events');
    expect(user.events(ns, 'clash').find((e) => e.type === 'Warning')).toMatchObject({ reason: 'ExchangeClash' });

    // Fixing the spec is all it takes.
    await user.patchSpec(ns, 'clash', { queues: [{ name: q('clash'), bindings: [{ exchange: clashExchange, type: 'direct', routingKey: 'x' }], route: { channel: 'c.{routingKey}' } }] });
    const fixed = await user.waitForReady(ns, 'clash', 'True');
    expect(fixed.status?.observedGeneration).toBe(2);
  });

  it('RabbitMQ down: Ready=False; when it is back, Ready=True without any edit', async () => {
    await proxy.stop();
    await user.create(ns, 'down', { ...simpleSpec(q('down')), rabbitmq: { connectionSecret: { name: 'rabbitmq-proxied' } } });
    const down = await user.waitForReady(ns, 'down', 'False');
    expect(readyCondition(down.status)).toMatchObject({ reason: 'RabbitMQUnavailable', message: expect.stringContaining(`RabbitMQ at ${redactUrl(proxiedUrl(proxy.port))} is unavailable`) });
    expect(readyCondition(down.status)?.message).toContain('ECONNREFUSED');
    await waitFor(() => user.events(ns, 'down').some((e) => e.reason === 'RabbitMQUnavailable'), 5000, 'the warning event');
    // Let a couple of backoff retries fail, then bring RabbitMQ back.
    await waitFor(() => operator.lines.filter((l) => l.msg === 'reconcile failed' && l.socketbridge === `${ns}/down`).length >= 3, 15000, 'retries with backoff');
    await proxy.start();
    const back = await user.waitForReady(ns, 'down', 'True', 20000);
    expect(back.metadata.generation).toBe(1);
    expect(back.status?.observedGeneration).toBe(1);
    const delays = operator.lines.filter((l) => l.msg === 'reconcile failed' && l.socketbridge === `${ns}/down`).map((l) => Number(l.retryInMs));
    expect(delays.slice(0, 3)).toEqual([200, 400, 800]);
  });

  it('a missing Secret: Ready=False, then Ready=True once the Secret exists', async () => {
    await user.create(ns, 'secret', { ...simpleSpec(q('secret')), rabbitmq: { connectionSecret: { name: 'later' } } });
    const missing = await user.waitForReady(ns, 'secret', 'False');
    expect(readyCondition(missing.status)).toMatchObject({ reason: 'SecretNotFound', message: `Secret ${ns}/later not found` });
    await user.createSecret(ns, 'later', RABBITMQ_URL);
    await user.waitForReady(ns, 'secret', 'True');
  });

  it('watch dropped: no event is lost (creations and a deletion), whether the watch resumes or its resourceVersion expired (410 Gone)', async () => {
    // The stream ends; the informer watches again from its resourceVersion and replays what it missed.
    fake.closeWatches();
    await user.create(ns, 'w1', simpleSpec(q('w1')));
    await user.waitForReady(ns, 'w1', 'True');

    // Watches fail for a while; objects change meanwhile; the history is compacted: the next watch gets 410, the informer relists.
    const failuresBefore = logCount(operator, 'socketbridge watch failed: restarting');
    const listsBefore = logCount(operator, 'listed socketbridges');
    fake.refuseWatches = true;
    try {
      fake.closeWatches();
      await waitFor(() => logCount(operator, 'socketbridge watch failed: restarting') > failuresBefore, 10000, 'the operator to see its watch refused');
      await user.create(ns, 'w2', simpleSpec(q('w2')));
      await user.create(ns, 'w3', simpleSpec(q('w3')));
      await user.delete(ns, 'w1'); // marked for deletion (it has the finalizer) while nobody watches
      fake.compact();
    } finally {
      fake.refuseWatches = false;
    }
    await user.waitForReady(ns, 'w2', 'True');
    await user.waitForReady(ns, 'w3', 'True');
    await user.waitForGone(ns, 'w1');
    expect(await registryEntry('w1')).toBeUndefined();
    expect(logCount(operator, 'listed socketbridges')).toBeGreaterThan(listsBefore);
    expect(operator.lines.some((l) => l.msg === 'listed socketbridges' && l.relist === true)).toBe(true);
    await waitFor(() => fake.openWatches > 0, 10000, 'the watch to be open again');
  });

  it('delete with deletionPolicy retain keeps the queue; with delete removes it; the route goes either way', async () => {
    await user.create(ns, 'kept', simpleSpec(q('kept'), { deletionPolicy: 'retain' }));
    await user.create(ns, 'gone', simpleSpec(q('gone'), { deletionPolicy: 'delete' }));
    await user.waitForReady(ns, 'kept', 'True');
    await user.waitForReady(ns, 'gone', 'True');
    expect(await rabbit.queue(q('kept'))).toBeDefined();
    expect(await rabbit.queue(q('gone'))).toBeDefined();

    await user.delete(ns, 'kept');
    await user.delete(ns, 'gone');
    await user.waitForGone(ns, 'kept');
    await user.waitForGone(ns, 'gone');
    expect(await registryEntry('kept')).toBeUndefined();
    expect(await registryEntry('gone')).toBeUndefined();
    expect(await redis.hget(OWNERS_KEY, `${ns}-kept`)).toBeNull();
    expect(await rabbit.queue(q('kept'))).toBeDefined();
    expect(await rabbit.queue(q('gone'))).toBeUndefined();
    expect(user.events(ns, 'kept').find((e) => e.reason === 'Deleted')?.message).toBe('routes removed; queues retained');
    expect(user.events(ns, 'gone').find((e) => e.reason === 'Deleted')?.message).toBe(`routes removed; deleted queues ${q('gone')}`);
  });

  it('serves /healthz, /readyz and /metrics', async () => {
    const port = Number((await operator.waitForLog((l) => l.msg === 'listening', 1000, 'the listening line')).port);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()).toEqual({ status: 'ready' });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/socketbridge_operator_leader\{service="operator"\} 1/);
    expect(metrics).toMatch(/socketbridge_operator_reconciles_total\{result="success",service="operator"\} \d+/);
    expect(metrics).toMatch(/socketbridge_operator_reconcile_errors_total\{reason="ExchangeClash",service="operator"\} \d+/);
    expect(metrics).toMatch(/socketbridge_operator_watch_restarts_total\{reason="relist",service="operator"\} \d+/);
    expect(metrics).toContain('socketbridge_operator_bridges{ready="False",service="operator"} 1');
  });
});
