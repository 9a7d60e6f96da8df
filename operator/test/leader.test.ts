import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { waitFor, type ManagedProcess } from '@socketbridge/devkit';
import type { KubeUser } from './support/kube.js';
import { uniqueId, type RabbitAdmin } from './support/services.js';
import { OperatorTestBed } from './support/test-bed.js';
import type { SocketBridgeSpec } from '../src/resource.js';

// Two operator replicas against one fake API server (test/support/fake-apiserver.ts; no real Kubernetes here).
const id = uniqueId();
const ns = `l${id}`;
const exchange = `opl-${id}`;
const queue = (name: string) => `opl-${id}.${name}`;
const leaseNamespace = 'socketbridge-system';
const leaseName = 'socketbridge-operator';
// A renew is aborted at the renew deadline and a leader that misses it exits: 2 s leaves room for a
// busy machine (two shared cores) while keeping the test short.
const timers = {
  SOCKETBRIDGE_LEASE_DURATION_MS: '3000',
  SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS: '2000',
  SOCKETBRIDGE_LEASE_RETRY_MS: '250',
};

const bed = new OperatorTestBed({ namespaces: [ns], queues: [queue('first'), queue('second'), queue('third')], exchanges: [exchange] });
let user: KubeUser, rabbit: RabbitAdmin, redis: Redis;
const replicas: Record<string, ManagedProcess> = {};

function spec(name: string): SocketBridgeSpec {
  return {
    rabbitmq: { connectionSecret: { name: 'rabbitmq' } },
    queues: [{ name: queue(name), bindings: [{ exchange, type: 'fanout' }], route: { channel: 'l.{routingKey}' } }],
    deletionPolicy: 'delete',
  };
}

function led(process: ManagedProcess): boolean {
  return process.lines.some((l) => l.msg === 'became the leader');
}

beforeAll(async () => {
  ({ user, rabbit, redis } = await bed.start());
});

afterAll(() => bed.stop());

describe('leader election on a coordination.k8s.io/v1 Lease', () => {
  let leader: ManagedProcess;
  let follower: ManagedProcess;

  it('two replicas: one leads and reconciles, the other only watches the lease', async () => {
    replicas.a = bed.operator('op-a', timers);
    replicas.b = bed.operator('op-b', timers);
    const first = await Promise.any([replicas.a, replicas.b].map((p) => p.waitForLog((l) => l.msg === 'became the leader', 20000, `${p.name} to lead`).then(() => p)));
    leader = first;
    follower = first === replicas.a ? replicas.b! : replicas.a!;
    await follower.waitForLog((l) => l.msg === 'another replica leads' && l.leader === leader.name, 10000, 'the follower to see the leader');
    expect((await user.lease(leaseNamespace, leaseName))?.spec?.holderIdentity).toBe(leader.name);

    await user.create(ns, 'first', spec('first'));
    await user.waitForReady(ns, 'first', 'True');
    await waitFor(() => user.events(ns, 'first').length > 0, 5000, 'the Reconciled event');
    expect(user.events(ns, 'first').map((e) => e.reportingInstance)).toEqual([leader.name]);
    expect(led(follower)).toBe(false);
    expect(follower.lines.some((l) => l.msg === 'controller started' || l.msg === 'reconciled' || l.msg === 'finalizer added')).toBe(false);
    // The follower is ready too (it serves probes), and says it does not lead.
    const port = Number((await follower.waitForLog((l) => l.msg === 'listening', 1000, 'listening')).port);
    expect(await (await fetch(`http://127.0.0.1:${port}/leader`)).json()).toEqual({ identity: follower.name, leader: false, holder: leader.name });
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  });

  it('the follower takes over when the leader dies and its lease expires', async () => {
    const killedAt = Date.now();
    await leader.stop('SIGKILL');
    const line = await follower.waitForLog((l) => l.msg === 'became the leader', 15000, 'the follower to take over');
    const tookMs = Number(line.time) - killedAt;
    // Not before the lease could have expired (duration 3000 ms, less about a retry period of observation lag), and promptly after.
    expect(tookMs).toBeGreaterThanOrEqual(2000);
    expect(tookMs).toBeLessThan(10000);
    const lease = await user.lease(leaseNamespace, leaseName);
    expect(lease?.spec?.holderIdentity).toBe(follower.name);
    expect(lease?.spec?.leaseTransitions).toBe(1);

    await user.create(ns, 'second', spec('second'));
    await user.waitForReady(ns, 'second', 'True');
    await waitFor(() => user.events(ns, 'second').length > 0, 5000, 'the Reconciled event');
    expect(user.events(ns, 'second').map((e) => e.reportingInstance)).toEqual([follower.name]);
  });

  it('SIGTERM: the leader stops reconciling, releases the lease and exits; a new replica leads at once', async () => {
    const current = follower;
    const { code } = await current.stop('SIGTERM', 10000);
    expect(code).toBe(0);
    const said = current.lines.map((l) => l.msg);
    expect(said.indexOf('controller stopped')).toBeGreaterThan(-1);
    expect(said.indexOf('controller stopped')).toBeLessThan(said.indexOf('released the lease'));
    expect((await user.lease(leaseNamespace, leaseName))?.spec?.holderIdentity).toBeUndefined();

    replicas.c = bed.operator('op-c', timers);
    const listening = await replicas.c.waitForLog((l) => l.msg === 'listening', 15000, 'op-c to start');
    const line = await replicas.c.waitForLog((l) => l.msg === 'became the leader', 15000, 'op-c to lead');
    // A released lease is free: the new replica takes it on its first try, without waiting out the 3000 ms lease.
    expect(Number(line.time) - Number(listening.time)).toBeLessThan(1000);
    await user.create(ns, 'third', spec('third'));
    await user.waitForReady(ns, 'third', 'True');
    // The finalizer works under the new leader too: deletionPolicy delete removes the queue.
    await user.delete(ns, 'first');
    await user.waitForGone(ns, 'first');
    expect(await rabbit.queue(queue('first'))).toBeUndefined();
    expect(await redis.hget(registryKeys.bridges, `${ns}-first`)).toBeNull();
  });
});
