import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { waitFor } from '@socketbridge/devkit';
import type { FakeApiServer } from './support/fake-apiserver.js';
import type { KubeUser } from './support/kube.js';
import { uniqueId, type RabbitAdmin } from './support/services.js';
import type { TcpProxy } from './support/tcp-proxy.js';
import { OperatorTestBed } from './support/test-bed.js';
import { readyCondition, type SocketBridge, type SocketBridgeSpec } from '../src/resource.js';

// Issue #14's soak, against the stand-in: two replicas, BRIDGES SocketBridges created, updated and
// deleted (half retain, half delete), RabbitMQ "restarted" once (a TCP proxy in front of it stops and
// starts) and the leader's connection to the API hung once mid-run.
const BRIDGES = 200;
const id = uniqueId();
const ns = `s${id}`;
const exchange = `ops-${id}`;
const queue = (i: number) => `ops-${id}.${i}`;
const name = (i: number) => `b${i}`;
const policy = (i: number): 'retain' | 'delete' => (i % 2 === 0 ? 'retain' : 'delete');
const timers = {
  SOCKETBRIDGE_LEASE_DURATION_MS: '3000',
  SOCKETBRIDGE_LEASE_RENEW_DEADLINE_MS: '2000',
  SOCKETBRIDGE_LEASE_RETRY_MS: '250',
  // Resync is drift repair, not what this test is about: slow enough not to drown two cores.
  SOCKETBRIDGE_RESYNC_MS: '60000',
  SOCKETBRIDGE_WORKERS: '4',
  SOCKETBRIDGE_WATCH_IDLE_MS: '3000',
};

// The namespace's Secret names the proxy in front of RabbitMQ, so the test can "restart" RabbitMQ.
const bed = new OperatorTestBed({
  namespaces: [ns],
  queues: Array.from({ length: BRIDGES }, (_, i) => queue(i)),
  exchanges: [exchange],
  bookmarkIntervalMs: 500,
  proxy: 'secrets',
});
let fake: FakeApiServer, user: KubeUser, proxy: TcpProxy, rabbit: RabbitAdmin, redis: Redis;

function spec(i: number, routingKey: string): SocketBridgeSpec {
  return {
    rabbitmq: { connectionSecret: { name: 'rabbitmq' } },
    queues: [{ name: queue(i), bindings: [{ exchange, type: 'topic', routingKey }], route: { channel: `s.${i}.{routingKey}` } }],
    deletionPolicy: policy(i),
  };
}

/** Bridges as the stand-in holds them (no API round trip per object). */
function stored(): SocketBridge[] {
  return fake.list('socketbridges', ns) as unknown as SocketBridge[];
}

function settled(bridge: SocketBridge): boolean {
  return readyCondition(bridge.status)?.status === 'True' && bridge.status?.observedGeneration === bridge.metadata.generation;
}

beforeAll(async () => {
  ({ fake, user, proxy, rabbit, redis } = await bed.start());
});

afterAll(() => bed.stop());

describe('soak', () => {
  it(`two replicas, ${BRIDGES} SocketBridges created, updated and deleted, RabbitMQ restarted and the leader hung: everything converges, and no two replicas ever both write`, async () => {
    const a = bed.operator('soak-a', timers);
    const b = bed.operator('soak-b', timers);
    const leader = await Promise.any([a, b].map((p) => p.waitForLog((l) => l.msg === 'became the leader', 20000, `${p.name} to lead`).then(() => p)));
    const follower = leader === a ? b : a;

    // Create.
    for (let i = 0; i < BRIDGES; i++) await user.create(ns, name(i), spec(i, `k${i}.#`));
    await waitFor(() => stored().filter(settled).length === BRIDGES, 150000, `${BRIDGES} bridges Ready`);

    // RabbitMQ goes away while half of them change; it comes back.
    await proxy.stop();
    for (let i = 0; i < BRIDGES; i += 2) await user.patchSpec(ns, name(i), spec(i, `u${i}.#`));
    await waitFor(() => stored().some((bridge) => readyCondition(bridge.status)?.reason === 'RabbitMQUnavailable'), 30000, 'a bridge to see RabbitMQ gone');
    await proxy.start();

    // The leader's connection to the API hangs while a quarter of the bridges of each policy are deleted.
    fake.hangClient(leader.name);
    const deleted = new Set<number>();
    for (let i = 0; i < BRIDGES; i += 4) {
      for (const j of [i, i + 1]) {
        await user.delete(ns, name(j));
        deleted.add(j);
      }
    }
    await follower.waitForLog((l) => l.msg === 'became the leader', 30000, 'the follower to take over');
    const { code } = await leader.exited;

    // Converged: live bridges Ready at their generation, deleted ones gone (no finalizer stuck).
    await waitFor(
      () => {
        const now = stored();
        return now.length === BRIDGES - deleted.size && now.every(settled);
      },
      150000,
      'every live bridge Ready at its generation and every deleted one gone',
    );
    const live = stored();
    const updated = live.filter((bridge) => bridge.metadata.generation === 2).length;

    // RabbitMQ and the registry agree: live queues exist, deleted ones are gone with `delete` and kept with `retain`.
    const missing: string[] = [];
    const orphaned: string[] = [];
    const wronglyKept: string[] = [];
    for (let i = 0; i < BRIDGES; i++) {
      const exists = (await rabbit.queue(queue(i))) !== undefined;
      const entry = await redis.hget(registryKeys.bridges, `${ns}-${name(i)}`);
      if (!deleted.has(i) && (!exists || entry === null)) missing.push(name(i));
      if (deleted.has(i) && entry !== null) orphaned.push(name(i));
      if (deleted.has(i) && policy(i) === 'delete' && exists) wronglyKept.push(queue(i));
      if (deleted.has(i) && policy(i) === 'retain' && !exists) missing.push(queue(i));
    }

    // At no moment did two replicas both write: the old leader's last write attempt came before the new leader's first.
    const writes = (client: string) => fake.requests.filter((r) => r.client === client && r.method !== 'GET' && !r.path.includes('/leases')).map((r) => r.at);
    const oldLast = Math.max(...writes(leader.name));
    const newFirst = Math.min(...writes(follower.name));

    console.log(
      `soak: ${BRIDGES} created, ${BRIDGES / 2} updated (${updated} live at generation 2), ${deleted.size} deleted, ${live.length} live and Ready; ` +
        `missing ${missing.length}, orphaned ${orphaned.length}, queues left by delete ${wronglyKept.length}; ` +
        `writes by the old leader ${writes(leader.name).length} (last at +0 ms), by the new one ${writes(follower.name).length} (first at +${newFirst - oldLast} ms); old leader exit code ${code}`,
    );
    expect(code).toBe(1);
    expect({ missing, orphaned, wronglyKept }).toEqual({ missing: [], orphaned: [], wronglyKept: [] });
    expect(updated).toBe(live.filter((bridge) => Number(bridge.metadata.name!.slice(1)) % 2 === 0).length);
    expect(oldLast).toBeLessThan(newFirst);
  }, 420_000);
});
