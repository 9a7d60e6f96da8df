import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api } from '@kubernetes/client-node';
import { repoRoot, waitFor, type ManagedProcess } from '@socketbridge/devkit';
import type { FakeApiServer } from './support/fake-apiserver.js';
import type { KubeUser } from './support/kube.js';
import { grantsFor, everyPermission, type Grant } from './support/rbac.js';
import { uniqueId, type RabbitAdmin } from './support/services.js';
import { OperatorTestBed } from './support/test-bed.js';
import type { SocketBridgeSpec } from '../src/resource.js';

// The operator under the RBAC of manifests/base/rbac.yaml, enforced by the stand-in API server
// (test/support/fake-apiserver.ts answers 403 to what no rule allows). SOCKETBRIDGE_TEST_RBAC
// points at another file (such as the previous commit's) to check that one instead.
const rbacPath = process.env.SOCKETBRIDGE_TEST_RBAC ?? `${repoRoot}manifests/base/rbac.yaml`;
const serviceAccount = { name: 'socketbridge-operator', namespace: 'socketbridge' };
const id = uniqueId();
const exchange = `opb-${id}`;
const q = (name: string) => `opb-${id}.${name}`;
const ns = `b${id}`;
const other = `o${id}`;
const queueNames = ['all', 'one', 'elsewhere'].map(q);

const bed = new OperatorTestBed({ namespaces: [ns, other], queues: queueNames, exchanges: [exchange] });
let fake: FakeApiServer, user: KubeUser, rabbit: RabbitAdmin;

function spec(queue: string, extra: Partial<SocketBridgeSpec> = {}): SocketBridgeSpec {
  return {
    rabbitmq: { connectionSecret: { name: 'rabbitmq' } },
    queues: [{ name: queue, bindings: [{ exchange, type: 'topic', routingKey: `${queue}.#` }], route: { channel: 'b.{routingKey}' } }],
    ...extra,
  };
}

function operator(label: string, grants: Grant[], env: Record<string, string> = {}): ManagedProcess {
  fake.authorize(label, grants);
  return bed.operator(label, { SOCKETBRIDGE_LEASE_NAMESPACE: serviceAccount.namespace, ...env });
}

/** What the client did, as `source: group/resource verb` of the rule that allowed it; and what was refused. */
function usage(client: string): { used: Set<string>; denied: string[] } {
  const mine = fake.decisions.filter((d) => d.client === client);
  return {
    used: new Set(mine.filter((d) => d.allowedBy).map((d) => `${d.allowedBy}: ${d.request.apiGroup}/${d.request.resource} ${d.request.verb}`)),
    denied: mine.filter((d) => !d.allowedBy).map((d) => `${d.request.verb} ${d.request.apiGroup}/${d.request.resource} ${d.request.namespace ?? '(all)'}/${d.request.name ?? ''}`),
  };
}

beforeAll(async () => {
  ({ fake, user, rabbit } = await bed.start());
});

afterAll(() => bed.stop());

describe("the operator under the manifests' RBAC, enforced by the stand-in", () => {
  const grants = grantsFor([rbacPath], serviceAccount, serviceAccount.namespace);

  it('the manifests bind a ClusterRole and a leader-election Role to the operator', () => {
    expect(grants.map((g) => g.source).sort()).toEqual(['ClusterRole/socketbridge-operator', 'Role/socketbridge/socketbridge-operator-leader-election']);
  });

  it('cluster-wide: a whole lifecycle without one 403, and every permission granted is used', async () => {
    const op = operator('op-all', grants);
    try {
      await op.waitForLog((l) => l.msg === 'became the leader', 20000, 'op-all to lead');
      await user.create(ns, 'all', spec(q('all'), { deletionPolicy: 'delete' }));
      await user.waitForReady(ns, 'all', 'True');
      // Drift repaired twice: the same Event again is a patch of the first (its count). A deletion that
      // lands while a reconcile is declaring anyway goes unnoticed (no event), so a few rounds are allowed.
      const repeated = () => user.events(ns, 'all').some((e) => e.reason === 'Reconciled' && e.message.includes('declared queue') && e.count >= 2);
      for (let round = 1; round <= 6 && !repeated(); round++) {
        await rabbit.deleteQueue(q('all'));
        await waitFor(async () => (await rabbit.queue(q('all'))) !== undefined, 20000, `drift repair ${round}`);
      }
      await waitFor(repeated, 10000, 'a repeated Event counted');
      await user.delete(ns, 'all');
      await user.waitForGone(ns, 'all');
      expect(await rabbit.queue(q('all'))).toBeUndefined();

      // The stand-in really refuses: this client may not list Secrets, or delete a SocketBridge.
      const asOperator = fake.kubeConfig('op-all').makeApiClient(CoreV1Api);
      await expect(asOperator.listNamespacedSecret({ namespace: ns })).rejects.toMatchObject({ code: 403 });

      const { used, denied } = usage('op-all');
      expect(denied).toEqual(['list /secrets ' + `${ns}/`]);
      expect([...used].sort()).toEqual(everyPermission(grants).sort());
    } finally {
      await op.stop('SIGTERM', 5000);
    }
  });

  it('one namespace (the chart with operator.watchNamespace: the same rules as a Role there): works there, and nothing outside it is touched', async () => {
    const scoped = grants.map((g) => (g.namespace === undefined ? { ...g, namespace: ns, source: g.source.replace('ClusterRole/', `Role/${ns}/`) } : g));
    const op = operator('op-one', scoped, { SOCKETBRIDGE_OPERATOR_NAMESPACE: ns });
    try {
      await op.waitForLog((l) => l.msg === 'became the leader', 20000, 'op-one to lead');
      await user.create(other, 'elsewhere', spec(q('elsewhere')));
      await user.create(ns, 'one', spec(q('one')));
      await user.waitForReady(ns, 'one', 'True');
      expect((await user.get(other, 'elsewhere'))?.metadata.finalizers).toBeUndefined();
      const { denied } = usage('op-one');
      expect(denied).toEqual([]);
      await user.delete(ns, 'one');
      await user.waitForGone(ns, 'one');
      await user.delete(other, 'elsewhere');
    } finally {
      await op.stop('SIGTERM', 5000);
    }
  });
});
