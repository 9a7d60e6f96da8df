import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { waitFor, type ManagedProcess } from '@socketbridge/devkit';
import type { FakeApiServer } from './support/fake-apiserver.js';
import type { KubeUser } from './support/kube.js';
import { RABBITMQ_URL, uniqueId, type RabbitAdmin } from './support/services.js';
import { OperatorTestBed } from './support/test-bed.js';
import { Watch } from '@kubernetes/client-node';
import { FINALIZER, type SocketBridgeSpec } from '../src/resource.js';

// Issue #14: what a real API server would show and the stand-in (test/support/fake-apiserver.ts)
// now enforces: namespace deletion, a leader on a dead connection, a silent watch, status churn.
const id = uniqueId();
const exchange = `opr-${id}`;
const q = (name: string) => `opr-${id}.${name}`;
const queueNames = ['nsdel', 'nosecret', 'busy', 'throttled', 'late', 'lead1', 'lead2'].map(q);
const namespaces = { deleted: `d${id}`, main: `r${id}`, lead: `e${id}` };
const leaseNamespace = 'socketbridge-system';
const leaseName = 'socketbridge-operator';
/** The watchdog's bound in these tests; the stand-in sends bookmarks every 500 ms, so a healthy watch is never idle that long. */
const WATCH_IDLE_MS = 2000;
const operatorEnv = {
  SOCKETBRIDGE_WATCH_IDLE_MS: String(WATCH_IDLE_MS),
  SOCKETBRIDGE_WATCH_TIMEOUT_SECONDS: '60',
  // Long, so the hung-watch test shows the watchdog, not a relist, finding the new object.
  SOCKETBRIDGE_RELIST_MS: '120000',
};

const bed = new OperatorTestBed({ namespaces: Object.values(namespaces), queues: queueNames, exchanges: [exchange], bookmarkIntervalMs: 500 });
let fake: FakeApiServer, user: KubeUser, rabbit: RabbitAdmin, redis: Redis;

function spec(queue: string, secret: string, extra: Partial<SocketBridgeSpec> = {}): SocketBridgeSpec {
  return {
    rabbitmq: { connectionSecret: { name: secret } },
    queues: [{ name: queue, bindings: [{ exchange, type: 'topic', routingKey: `${queue}.#` }], route: { channel: 'r.{routingKey}' } }],
    ...extra,
  };
}

function operator(label: string, env: Record<string, string> = {}): ManagedProcess {
  return bed.operator(label, { ...operatorEnv, ...env });
}

function logTime(process: ManagedProcess, msg: string): number | undefined {
  const line = process.lines.find((l) => l.msg === msg);
  return line ? Number(line.time) : undefined;
}

beforeAll(async () => {
  ({ fake, user, rabbit, redis } = await bed.start());
});

afterAll(() => bed.stop());

describe('the stand-in admits SocketBridges as a real server does, from the CRD file', () => {
  it('prunes unknown fields, applies defaults, and refuses what the schema or a CEL rule refuses (422)', async () => {
    const ns = namespaces.main;
    const body = { ...spec(q('admit'), 'rabbitmq'), unknownField: 1 } as SocketBridgeSpec;
    const created = await user.create(ns, 'admit', body);
    expect(created.spec).not.toHaveProperty('unknownField');
    expect(created.spec).toMatchObject({ deletionPolicy: 'retain', channels: [], queues: [{ durable: true, singleActiveConsumer: false }] });
    await expect(user.create(ns, 'amq', spec('amq.reserved', 'rabbitmq'))).rejects.toMatchObject({
      code: 422,
      body: expect.stringContaining('spec.queues[0].name: queue names starting with amq. are reserved by RabbitMQ (got \\"amq.reserved\\")'),
    });
    await expect(user.patchSpec(ns, 'admit', { deletionPolicy: 'purge' as never })).rejects.toMatchObject({ code: 422, body: expect.stringContaining('spec.deletionPolicy: must be one of retain, delete') });
    expect(fake.object('socketbridges', ns, 'admit')?.spec).toMatchObject({ deletionPolicy: 'retain' });
    await user.delete(ns, 'admit');
    await user.waitForGone(ns, 'admit');
  });
});

describe('the stand-in serves watches as a real server does', () => {
  it('without a resourceVersion: an ADDED per existing object first; bookmarks when asked; the stream ends at timeoutSeconds', async () => {
    const ns = namespaces.main;
    await user.create(ns, 'seen', spec(q('seen'), 'rabbitmq'));
    const events: Array<{ type: string; name?: string; resourceVersion?: string }> = [];
    let ended = false;
    const startedAt = Date.now();
    const controller = await new Watch(fake.kubeConfig()).watch(
      `/apis/socketbridge.io/v1alpha1/namespaces/${ns}/socketbridges`,
      { allowWatchBookmarks: true, timeoutSeconds: 2 },
      (type: string, object: { metadata?: { name?: string; resourceVersion?: string } }) => events.push({ type, name: object.metadata?.name, resourceVersion: object.metadata?.resourceVersion }),
      () => (ended = true),
    );
    try {
      await waitFor(() => ended, 5000, 'the server to end the watch at its timeoutSeconds');
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1900);
      expect(events[0]).toMatchObject({ type: 'ADDED', name: 'seen' });
      expect(events.filter((e) => e.type === 'BOOKMARK').length).toBeGreaterThanOrEqual(2); // every 500 ms here
      expect(events.find((e) => e.type === 'BOOKMARK')?.resourceVersion).toMatch(/^\d+$/);
    } finally {
      controller.abort();
    }
    await user.delete(ns, 'seen');
  });
});

describe('one operator against the stand-in', () => {
  let op: ManagedProcess;

  beforeAll(async () => {
    op = operator('op-r');
    await op.waitForLog((l) => l.msg === 'became the leader', 20000, 'op-r to lead');
    await op.waitForLog((l) => l.msg === 'listed socketbridges', 20000, 'op-r to list');
  });

  afterAll(async () => {
    await op?.stop('SIGTERM', 5000);
  });

  it('deleting a namespace (its Secrets go first) does not hang on a deletionPolicy delete bridge: the finalizer goes, the queue is left and said so', async () => {
    const ns = namespaces.deleted;
    await user.create(ns, 'nsdel', spec(q('nsdel'), 'rabbitmq', { deletionPolicy: 'delete' }));
    const ready = await user.waitForReady(ns, 'nsdel', 'True');
    expect(ready.metadata.finalizers).toEqual([FINALIZER]);

    await user.core.deleteNamespace({ name: ns });
    // The namespace controller's work, as the stand-in does it: the Secret is gone at once; the bridge waits for its finalizer.
    expect(fake.object('secrets', ns, 'rabbitmq')).toBeUndefined();

    await waitFor(() => !fake.namespaceExists(ns), 15000, `namespace ${ns} to finish terminating`);
    expect(await redis.hget(registryKeys.bridges, `${ns}-nsdel`)).toBeNull();
    // The queue could not be deleted without the Secret: left behind, and the operator says which.
    expect(await rabbit.queue(q('nsdel'))).toBeDefined();
    const said = await op.waitForLog((l) => l.msg === 'finalized without deleting the queues' && l.socketbridge === `${ns}/nsdel`, 5000, 'the left-behind warning');
    expect(String(said.leftBehind)).toContain(q('nsdel'));
  });

  it('a bridge whose connection Secret was deleted first is still deleted, with a Warning Event naming the queues left behind', async () => {
    const ns = namespaces.main;
    await user.createSecret(ns, 'short-lived', RABBITMQ_URL);
    await user.create(ns, 'nosecret', spec(q('nosecret'), 'short-lived', { deletionPolicy: 'delete' }));
    await user.waitForReady(ns, 'nosecret', 'True');
    await user.core.deleteNamespacedSecret({ namespace: ns, name: 'short-lived' });
    await user.delete(ns, 'nosecret');
    await user.waitForGone(ns, 'nosecret', 15000);
    expect(await rabbit.queue(q('nosecret'))).toBeDefined();
    await waitFor(() => user.events(ns, 'nosecret').some((e) => e.reason === 'QueuesLeftBehind'), 5000, 'the QueuesLeftBehind event');
    const event = user.events(ns, 'nosecret').find((e) => e.reason === 'QueuesLeftBehind')!;
    expect(event.type).toBe('Warning');
    expect(event.message).toBe(`routes removed; Secret ${ns}/short-lived not found: deletionPolicy delete could not be applied; left in RabbitMQ: queues ${q('nosecret')}`);
  });

  it('resyncs of a busy queue write no status: counts are metrics, and an unchanged status is not sent', async () => {
    const ns = namespaces.main;
    await user.createSecret(ns, 'rabbitmq-busy', RABBITMQ_URL);
    await user.create(ns, 'busy', spec(q('busy'), 'rabbitmq-busy'));
    await user.waitForReady(ns, 'busy', 'True');
    const statusPath = `/apis/socketbridge.io/v1alpha1/namespaces/${ns}/socketbridges/busy/status`;
    const secretPath = `/api/v1/namespaces/${ns}/secrets/rabbitmq-busy`;
    const statusWrites = () => fake.requests.filter((r) => r.path === statusPath && r.method !== 'GET').length;
    const reconciles = () => fake.requests.filter((r) => r.path === secretPath && r.method === 'GET').length; // each reconcile reads the Secret once
    const writesBefore = statusWrites();
    expect(writesBefore).toBeGreaterThan(0);
    // Messages pile up between resyncs (nothing consumes this queue): three resyncs, each seeing a new count.
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 5; i++) expect(await rabbit.routes(exchange, `${q('busy')}.m`)).toBe(true);
      expect((await rabbit.queue(q('busy')))?.messageCount).toBe(5 * round);
      const seen = reconciles();
      await waitFor(() => reconciles() > seen, 10000, `resync ${round} to reconcile the busy bridge`);
    }
    // One more: the same key is never reconciled twice at once, so round 3's (would-be) status write is done.
    const last = reconciles();
    await waitFor(() => reconciles() > last, 10000, 'one more resync');
    expect(statusWrites(), 'status writes during resyncs of a busy queue').toBe(writesBefore);
    const port = Number((await op.waitForLog((l) => l.msg === 'listening', 1000, 'the listening line')).port);
    const gauge = new RegExp(`socketbridge_operator_queue_messages\\{namespace="${ns}",socketbridge="busy",queue="${q('busy').replace(/\./g, '\\.')}"[^}]*\\} 15`);
    await waitFor(async () => gauge.test(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()), 10000, 'the queue depth metric to say 15');
    const bridge = await user.get(ns, 'busy');
    expect(bridge?.status?.queues).toEqual([{ name: q('busy'), ready: true }]);
  });

  it('429 Too Many Requests (with Retry-After) on its next requests: the operator retries, and a new bridge still becomes Ready', async () => {
    const ns = namespaces.main;
    const before = fake.requests.filter((r) => r.client === 'op-r').length;
    fake.throttle('op-r', 6);
    await user.create(ns, 'throttled', spec(q('throttled'), 'rabbitmq'));
    await user.waitForReady(ns, 'throttled', 'True', 20000);
    // It was throttled (the next six requests it made got 429, which it logged) and carried on.
    expect(fake.requests.filter((r) => r.client === 'op-r').length).toBeGreaterThan(before + 6);
    expect(op.lines.some((l) => String(l.err ?? '').startsWith('429'))).toBe(true);
    await user.delete(ns, 'throttled');
    await user.waitForGone(ns, 'throttled');
  });

  it('a hung (half-open) watch is restarted by the watchdog: a new SocketBridge still becomes Ready within its bound', async () => {
    const ns = namespaces.main;
    await waitFor(() => fake.openWatches > 0, 10000, 'a watch to be open');
    const idleBefore = op.lines.filter((l) => l.msg === 'socketbridge watch idle: restarting it').length;
    expect(fake.hangWatches()).toBeGreaterThan(0);
    const createdAt = Date.now();
    await user.create(ns, 'late', spec(q('late'), 'rabbitmq'));
    await user.waitForReady(ns, 'late', 'True', WATCH_IDLE_MS + 8000);
    const tookMs = Date.now() - createdAt;
    expect(tookMs).toBeLessThan(WATCH_IDLE_MS + 8000);
    expect(op.lines.filter((l) => l.msg === 'socketbridge watch idle: restarting it').length).toBeGreaterThan(idleBefore);
    // The restarted watch asked for bookmarks and a server-side timeout.
    const watches = fake.requests.filter((r) => r.method === 'GET' && r.query.includes('watch=true') && r.client === 'op-r');
    expect(watches.length).toBeGreaterThan(1);
    for (const watch of watches) expect(watch.query).toMatch(/allowWatchBookmarks=true.*timeoutSeconds=\d+|timeoutSeconds=\d+.*allowWatchBookmarks=true/);
  });
});

describe('leader election against the stand-in', () => {
  const timers = {
    SOCKETBRIDGE_LEASE_DURATION_MS: '3000',
    SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS: '2000',
    SOCKETBRIDGE_LEASE_RETRY_MS: '250',
  };

  it('a leader whose connection hangs stops (and exits) before a follower takes over: the two never both write', async () => {
    const a = operator('op-a', timers);
    const b = operator('op-b', timers);
    const leader = await Promise.any([a, b].map((p) => p.waitForLog((l) => l.msg === 'became the leader', 20000, `${p.name} to lead`).then(() => p)));
    const follower = leader === a ? b : a;
    await follower.waitForLog((l) => l.msg === 'another replica leads' && l.leader === leader.name, 10000, 'the follower to see the leader');
    await user.create(namespaces.lead, 'lead1', spec(q('lead1'), 'rabbitmq'));
    await user.waitForReady(namespaces.lead, 'lead1', 'True');

    fake.hangClient(leader.name);
    await follower.waitForLog((l) => l.msg === 'became the leader', 15000, 'the follower to take over');
    const tookOver = logTime(follower, 'became the leader')!;
    // The leader gave up at its renew deadline, before the Lease could expire for anyone else, and exited.
    const lost = logTime(leader, 'leader election lost: exiting');
    expect(lost, 'the hung leader says it lost the lease').toBeDefined();
    expect(lost!).toBeLessThan(tookOver);
    const { code } = await leader.exited;
    expect(code).toBe(1);
    // As the stand-in saw it: the old leader's last write attempt came before the new leader's first write.
    const writes = (client: string) => fake.requests.filter((r) => r.client === client && r.method !== 'GET' && !r.path.includes('/leases'));
    await user.create(namespaces.lead, 'lead2', spec(q('lead2'), 'rabbitmq'));
    await user.waitForReady(namespaces.lead, 'lead2', 'True');
    const oldLast = Math.max(...writes(leader.name).map((r) => r.at));
    const newFirst = Math.min(...writes(follower.name).map((r) => r.at));
    expect(writes(follower.name).length).toBeGreaterThan(0);
    expect(oldLast).toBeLessThan(newFirst);
    expect((await user.lease(leaseNamespace, leaseName))?.spec?.holderIdentity).toBe(follower.name);
    await follower.stop('SIGTERM', 5000);
  });

  it("expiry is judged by the Lease's own leaseDurationSeconds, not the follower's setting", async () => {
    // A holder that died: its Lease says 1 s; this replica's own setting is 20 s.
    const existing = await user.lease(leaseNamespace, leaseName);
    const now = new Date();
    const body = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: leaseName, namespace: leaseNamespace, ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}) },
      spec: { holderIdentity: 'ghost', leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: 5 },
    };
    if (existing) await user.coordination.replaceNamespacedLease({ namespace: leaseNamespace, name: leaseName, body });
    else await user.coordination.createNamespacedLease({ namespace: leaseNamespace, body });
    const c = operator('op-c', { SOCKETBRIDGE_LEASE_DURATION_MS: '20000', SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS: '15000', SOCKETBRIDGE_LEASE_RETRY_MS: '200' });
    const listening = await c.waitForLog((l) => l.msg === 'listening', 15000, 'op-c to start');
    const line = await c.waitForLog((l) => l.msg === 'became the leader', 15000, 'op-c to take the expired lease');
    expect(Number(line.time) - Number(listening.time)).toBeLessThan(5000);
    expect((await user.lease(leaseNamespace, leaseName))?.spec?.leaseTransitions).toBe(6);
    await c.stop('SIGTERM', 5000);
  });
});
