// The chart's operator pods from the image, wired to an API server as a kubelet wires them: the
// in-cluster config (KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's token, CA and namespace
// mounted), over TLS. The API server is the operator's stand-in (operator/test/support), holding
// the operator's ServiceAccount to exactly the RBAC rules the chart renders. Both replicas pass their
// probes, one holds the Lease, and a SocketBridge created as a user would gets Ready=True from the
// containerised leader.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { AmqpProducer, rabbitmqUrl, redisUrl, waitFor } from '@socketbridge/devkit';
import { FakeApiServer } from '../../../operator/test/support/fake-apiserver.js';
import { KubeUser } from '../../../operator/test/support/kube.js';
import { grantsFor } from '../../../operator/test/support/rbac.js';
import { renderChart } from '../../src/deploy/helm-render.js';
import { chartDir } from '../../src/deploy/repo.js';
import { IMAGE, buildImage, podmanOk, sweepStaleContainers } from './support/podman.js';
import { PodCluster, type K8sObject } from './support/pods.js';

const namespace = 'socketbridge';
const [repository, tag] = [IMAGE.slice(0, IMAGE.lastIndexOf(':')), IMAGE.slice(IMAGE.lastIndexOf(':') + 1)];
const runId = `sbop-${process.pid}-${Date.now().toString(36)}`;
const id = randomUUID().slice(0, 8);
const scratch = mkdtempSync(join(tmpdir(), 'socketbridge-image-operator-'));

let fake: FakeApiServer;
let tls: TlsServer;
const tlsSockets = new Set<Socket>();
let cluster: PodCluster | undefined;
let objects: K8sObject[];
let user: KubeUser;

/** A self-signed certificate for 127.0.0.1: the API server's serving certificate and the pods' CA. */
function certificate(): { key: string; cert: string } {
  const [key, cert] = [join(scratch, 'tls.key'), join(scratch, 'tls.crt')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=kubernetes', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

beforeAll(async () => {
  await sweepStaleContainers();
  await buildImage();
  objects = renderChart(chartDir, {
    releaseName: 'socketbridge',
    namespace,
    // Redis database 13: the operator tests' own, so no publisher of another file consumes these bridges.
    values: [{ image: { repository, tag, pullPolicy: 'Never' }, rabbitmq: { url: rabbitmqUrl() }, redis: { url: redisUrl(13) } }],
  }).objects as unknown as K8sObject[];

  fake = new FakeApiServer();
  const fakePort = await fake.start();
  const { key, cert } = certificate();
  tls = createTlsServer({ key, cert }, (socket) => {
    tlsSockets.add(socket);
    const upstream = connect({ host: '127.0.0.1', port: fakePort });
    tlsSockets.add(upstream);
    socket.pipe(upstream).pipe(socket);
    const end = () => {
      socket.destroy();
      upstream.destroy();
      tlsSockets.delete(socket);
      tlsSockets.delete(upstream);
    };
    for (const s of [socket, upstream]) {
      s.once('error', end);
      s.once('close', end);
    }
  });
  tls.listen(0, '127.0.0.1');
  await once(tls, 'listening');
  const tlsPort = (tls.address() as { port: number }).port;

  // The operator's ServiceAccount: its token names it to the API server, which allows it exactly
  // what the rendered ClusterRole/Role and their bindings grant.
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] === 'operator')!;
  const serviceAccount = (deployment.spec as { template: { spec: { serviceAccountName: string } } }).template.spec.serviceAccountName;
  const token = `image-test-${serviceAccount}-${id}`;
  const saDir = join(scratch, 'serviceaccounts', serviceAccount);
  mkdirSync(saDir, { recursive: true });
  writeFileSync(join(saDir, 'token'), token);
  writeFileSync(join(saDir, 'ca.crt'), cert);
  writeFileSync(join(saDir, 'namespace'), namespace);
  const rbacFile = join(scratch, 'rbac.yaml');
  writeFileSync(rbacFile, objects.filter((o) => /^(Cluster)?Role(Binding)?$/.test(o.kind)).map((o) => YAML.stringify(o)).join('---\n'));
  fake.authorize(token, grantsFor([rbacFile], { name: serviceAccount, namespace }, namespace));
  user = new KubeUser(fake);

  cluster = await PodCluster.start(objects, {
    namespace,
    runId,
    kubernetes: { host: '127.0.0.1', port: tlsPort, serviceAccountDir: join(scratch, 'serviceaccounts') },
    include: (o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] === 'operator',
  });
}, 25 * 60_000);

afterAll(async () => {
  await cluster?.teardown();
  for (const socket of tlsSockets) socket.destroy();
  await new Promise<void>((resolve) => (tls ? tls.close(() => resolve()) : resolve()));
  await fake?.stop();
  const producer = await AmqpProducer.connect();
  const channel = await producer.connection.createChannel();
  await channel.deleteQueue(`img-${id}.updates`).catch(() => undefined);
  await channel.deleteExchange(`img-${id}`).catch(() => undefined);
  await producer.close();
  rmSync(scratch, { recursive: true, force: true });
}, 120_000);

describe("the chart's operator pods from the image, on an API server", () => {
  it('both replicas run with the in-cluster config and pass their probes; one holds the Lease', async () => {
    const pods = cluster!.podsOf('operator');
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      // The ServiceAccount mounted where client-node's in-cluster config reads it, as the kubelet mounts it.
      expect(pod.argv.join(' ')).toContain(':/var/run/secrets/kubernetes.io/serviceaccount:ro');
      expect(pod.env.KUBERNETES_SERVICE_HOST).toBe('127.0.0.1');
    }
    try {
      await waitFor(() => pods.every((pod) => pod.ready && pod.restarts === 0), 120_000, 'both operator replicas ready', 250);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await cluster!.describe()}`);
    }
    const leaseName = pods[0]!.env.SOCKETBRIDGE_LEASE_NAME!;
    await waitFor(() => Boolean(fake.object('leases', namespace, leaseName)), 30_000, `Lease ${leaseName}`);
    const lease = fake.object('leases', namespace, leaseName) as unknown as { spec: { holderIdentity: string } };
    expect(pods.map((pod) => pod.name)).toContain(lease.spec.holderIdentity);
    // The operator's requests came with its ServiceAccount token, and the chart's RBAC allowed each.
    const own = fake.decisions.filter((d) => d.client.startsWith('image-test-'));
    expect(own.length).toBeGreaterThan(0);
    expect(own.filter((d) => !d.allowedBy)).toEqual([]);
  }, 180_000);

  it('a SocketBridge created as a user would gets Ready=True from the leader in its container', async () => {
    // No rabbitmq.connectionSecret: the operator uses the chart's SOCKETBRIDGE_RABBITMQ_URL.
    await user.create(namespace, `img-${id}`, {
      queues: [{ name: `img-${id}.updates`, bindings: [{ exchange: `img-${id}`, type: 'topic', routingKey: `img-${id}.#` }], route: { channel: 'c.{routingKey}' } }],
      channels: [{ pattern: 'c.#', access: 'public' }],
      deletionPolicy: 'delete',
    });
    const bridge = await user.waitForReady(namespace, `img-${id}`, 'True', 60_000);
    expect(bridge.status).toBeDefined();
    await user.delete(namespace, `img-${id}`);
    await user.waitForGone(namespace, `img-${id}`, 60_000);
    // The containers' logs show the operator reconciled it (not some other process).
    const logs = (await Promise.all(cluster!.podsOf('operator').map((pod) => podmanOk(['logs', pod.name])))).join('\n');
    expect(logs).toContain(`img-${id}`);
  }, 180_000);
});
