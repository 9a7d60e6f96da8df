// The chart's pods, run from the built image as a kubelet would run them (support/pods.ts): the
// rendered args, env (keys from the rendered Secret), user, read-only root, dropped capabilities
// and probes, each Service a balancer over its ready pods. Then, through those containers only: a
// client signs up, connects through the workers' Service and receives a RabbitMQ message; the chart's
// `helm test` client runs from the image and passes; a worker is stopped with SIGTERM and its grace
// period and a broker is killed while clients receive: nothing is lost to the recovering clients.
// Two value sets: the chart's defaults, and a highly available one (3 workers, 2 brokers, 2 publishers,
// a quorum default queue, Redis over TLS signed by a private CA that extraCaCerts mounts from a Secret);
// and manifests/base as kustomize renders it, with the Secret docs/deploying.md tells users to create,
// through an overlay adding its components/extra-ca for Redis over TLS with a private CA.
// The operator's pods need an API server: operator.test.ts runs them against the operator's stand-in.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmqpProducer, PublisherApi, RedisSentinelSet, TestCa, rabbitNames, rabbitmqUrl, redisUrl, waitFor, type RabbitNames } from '@socketbridge/devkit';
import { SocketBridgeClient } from '@socketbridge/client';
import { registryKeys, type Envelope } from '@socketbridge/common';
import { renderChart, type Values } from '../../src/deploy/helm-render.js';
import { chartDir, kustomize, repoRoot } from '../../src/deploy/repo.js';
import { IMAGE, buildImage, podman, podmanOk, removeContainers, sweepStaleContainers } from './support/podman.js';
import { Pod, PodCluster, quantity, type K8sObject, type PodSpec } from './support/pods.js';

const namespace = 'socketbridge';
const [repository, tag] = [IMAGE.slice(0, IMAGE.lastIndexOf(':')), IMAGE.slice(IMAGE.lastIndexOf(':') + 1)];
const extraContainers: string[] = [];
let producer: AmqpProducer;
const run = promisify(execFile);

/** Renders the chart as `helm template` would, on this machine's RabbitMQ and Redis, with queues of the file's own. */
function render(names: RabbitNames, ...overrides: Values[]): K8sObject[] {
  const extraEnv = Object.entries(names).map(([name, value]) => ({ name, value }));
  const values: Values = {
    image: { repository, tag, pullPolicy: 'Never' },
    rabbitmq: { url: rabbitmqUrl() },
    redis: { url: redisUrl() },
    publisher: { extraEnv },
  };
  const result = renderChart(chartDir, { releaseName: 'socketbridge', namespace, values: [values, ...overrides] });
  return result.objects as unknown as K8sObject[];
}

/**
 * manifests/base as kustomize renders it, with what an overlay and the docs add: the image, the
 * file's RabbitMQ names on the publisher, and the Secret made by the `kubectl create secret` command
 * in docs/deploying.md (its random keys generated, its URLs this machine's RabbitMQ and the given
 * Redis). With `extraCa`, through an overlay as docs/deploying.md writes it: the base and the
 * components/extra-ca component (its Secret comes from the suite's setup).
 */
function kustomizeBase(names: RabbitNames, { redis = redisUrl(), extraCa = false }: { redis?: string; extraCa?: boolean } = {}): K8sObject[] {
  let dir = join(repoRoot, 'manifests', 'base');
  if (extraCa) {
    // kustomize takes only relative paths to the base and the component.
    dir = join(repoRoot, 'test-output', 'pods-kustomize-extra-ca');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'kustomization.yaml'), 'resources: [../../manifests/base]\ncomponents: [../../manifests/components/extra-ca]\n');
  }
  const objects = kustomize(dir) as unknown as K8sObject[];
  for (const o of objects) {
    if (o.kind !== 'Deployment') continue;
    const containers = (o.spec as { template: { spec: PodSpec } }).template.spec.containers;
    for (const c of containers) {
      if (c.image === 'socketbridge' || c.image.startsWith('socketbridge:')) c.image = IMAGE;
      if (o.metadata.labels?.['app.kubernetes.io/component'] === 'publisher') c.env = [...(c.env ?? []), ...Object.entries(names).map(([name, value]) => ({ name, value }))];
    }
  }
  const docs = readFileSync(join(repoRoot, 'docs', 'deploying.md'), 'utf8');
  const command = /kubectl -n socketbridge create secret generic socketbridge((?:\s*\\\n\s*--from-literal=[a-z0-9-]+=(?:"[^"]*"|'[^']*'|\S+))+)/.exec(docs);
  if (!command) throw new Error('docs/deploying.md has no `kubectl -n socketbridge create secret generic socketbridge` command');
  const stringData: Record<string, string> = {};
  for (const [, key, value] of command[1]!.matchAll(/--from-literal=([a-z0-9-]+)=("[^"]*"|'[^']*'|\S+)/g)) {
    const random = /openssl rand -hex (\d+)/.exec(value!);
    if (random) stringData[key!] = randomBytes(Number(random[1])).toString('hex');
    else if (key === 'rabbitmq-url') stringData[key] = rabbitmqUrl();
    else if (key === 'redis-url') stringData[key] = redis;
    else throw new Error(`docs/deploying.md: no way to fill ${key}=${value}`);
  }
  objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'socketbridge', namespace }, stringData });
  return objects;
}

function secretValue(objects: K8sObject[], key: string): string {
  for (const o of objects) {
    if (o.kind === 'Secret' && o.data?.[key]) return Buffer.from(o.data[key], 'base64').toString('utf8');
    if (o.kind === 'Secret' && o.stringData?.[key]) return o.stringData[key];
  }
  throw new Error(`no Secret holds ${key}`);
}

/**
 * Redis over TLS only, its certificate signed by a throw-away private CA (devkit's TestCa): a Sentinel
 * set's master, reached with the one-node rediss:// URL. The pods trust the CA only through
 * extraCaCerts, a Secret holding its ca.crt added to the render as a cert-manager Secret would be.
 */
async function privateCaRedis(secret = 'socketbridge-redis-ca'): Promise<SuiteSetup> {
  const ca = TestCa.create();
  const set = await RedisSentinelSet.start({ tls: ca }).catch((error: Error) => {
    ca.remove();
    throw error;
  });
  const redis = new Redis({ host: '127.0.0.1', port: set.masterPort, tls: { ca: ca.ca, servername: 'localhost' }, lazyConnect: true });
  return {
    url: `rediss://127.0.0.1:${set.masterPort}`,
    values: { redis: { url: `rediss://127.0.0.1:${set.masterPort}` }, extraCaCerts: { secretName: secret } },
    objects: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: secret, namespace }, data: { 'ca.crt': ca.ca.toString('base64') } }],
    redis,
    cleanup: async () => {
      redis.disconnect();
      await set.stop();
      ca.remove();
    },
  };
}

/** The type RabbitMQ reports for a queue of the tests' vhost ('' if there is no such queue). */
async function queueType(name: string): Promise<string> {
  const vhost = decodeURIComponent(new URL(rabbitmqUrl()).pathname.slice(1)) || '/';
  const { stdout } = await run('rabbitmqctl', ['list_queues', '-p', vhost, 'name', 'type', '-q', '--no-table-headers']);
  return stdout.split('\n').map((line) => line.trim().split(/\s+/)).find(([queue]) => queue === name)?.[1] ?? '';
}

/** Waits until every pod is ready, failing early (with the pods' logs) on a restart. */
async function allReady(cluster: PodCluster, timeoutMs = 120_000): Promise<void> {
  try {
    await waitFor(() => {
      const restarted = cluster.pods.find((pod) => pod.restarts > 0);
      if (restarted) throw new Error(`${restarted.name} restarted: ${restarted.exits.join(', ')}`);
      return cluster.pods.every((pod) => pod.ready);
    }, timeoutMs, 'every pod ready', 250);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await cluster.describe()}`);
  }
}

/** The chart's `helm test` Pod, run from the image with its rendered env (Services resolved as for the pods). */
async function runHelmTestPod(cluster: PodCluster, objects: K8sObject[], runId: string): Promise<{ code: number; output: string }> {
  const pod = objects.find((o) => o.kind === 'Pod' && o.metadata.annotations?.['helm.sh/hook'] === 'test');
  if (!pod) throw new Error('the render has no helm test Pod');
  const spec = pod.spec as unknown as PodSpec;
  const test = new Pod(`${runId}-test-connection`, pod, spec, spec.containers[0]!, pod.metadata.labels ?? {}, cluster);
  extraContainers.push(test.name);
  test.env = test.resolveEnv();
  try {
    const args = test.runArgs().map((a) => (a === '--detach' ? '--rm' : a));
    const result = await podman(args, 120_000);
    return { code: result.code, output: `${result.stdout}${result.stderr}` };
  } finally {
    test.dispose();
  }
}

beforeAll(async () => {
  const swept = await sweepStaleContainers();
  if (swept.length) console.log(`removed ${swept.length} containers left by an earlier, killed run: ${swept.join(' ')}`);
  await buildImage();
  producer = await AmqpProducer.connect();
}, 25 * 60_000);

afterAll(async () => {
  await removeContainers(extraContainers);
  await producer?.close();
});

/** Servers of a suite's own: the values and objects that point the pods at them, and how to stop them. */
interface SuiteSetup {
  /** SOCKETBRIDGE_REDIS_URL of the suite's Redis. */
  url: string;
  values: Values;
  objects: K8sObject[];
  /** A connection to the Redis the pods use. */
  redis: Redis;
  cleanup: () => Promise<void>;
}

interface Suite {
  label: string;
  /** The objects to run, given the file's RabbitMQ names and the setup's values. */
  objects: (names: RabbitNames, values: Values) => K8sObject[];
  expected: Record<string, number>;
  helmTest: boolean;
  faultRun: boolean;
  /** Started before the suite's pods, cleaned up after them. */
  setup?: () => Promise<SuiteSetup>;
  /** The type of the default queue the publishers declare. */
  queueType?: 'classic' | 'quorum';
}

const suites: Suite[] = [
  { label: "the chart's default values", objects: (names) => render(names, {}), expected: { state: 1, broker: 2, worker: 1, publisher: 2 }, helmTest: true, faultRun: false },
  {
    label: 'the chart with an HA value set (3 workers, 2 brokers, 2 publishers, a quorum queue, Redis over TLS with a private CA)',
    objects: (names, values) => render(names, { worker: { autoscaling: { enabled: false }, replicas: 3 }, broker: { replicas: 2 }, publisher: { replicas: 2, queueType: 'quorum' } }, values),
    expected: { state: 1, broker: 2, worker: 3, publisher: 2 },
    helmTest: true,
    faultRun: true,
    setup: () => privateCaRedis(),
    queueType: 'quorum',
  },
  {
    label: 'manifests/base (kubectl kustomize) with the Secret docs/deploying.md creates, and its extra-ca component for Redis over TLS with a private CA',
    objects: (names, values) => kustomizeBase(names, { redis: String((values.redis as { url: string }).url), extraCa: true }),
    expected: { state: 1, broker: 2, worker: 1, publisher: 2 },
    helmTest: false,
    faultRun: false,
    // The Secret the component mounts, under the name docs/deploying.md creates it with.
    setup: () => privateCaRedis(extraCaSecretFromDocs()),
    queueType: 'classic',
  },
];

/** The Secret name docs/deploying.md's command for the extra-ca component creates (with its ca.crt key). */
function extraCaSecretFromDocs(): string {
  const docs = readFileSync(join(repoRoot, 'docs', 'deploying.md'), 'utf8');
  const command = /kubectl -n socketbridge create secret generic (\S+) --from-file=ca\.crt=/.exec(docs);
  if (!command) throw new Error('docs/deploying.md has no `kubectl -n socketbridge create secret generic … --from-file=ca.crt=…` command for the extra-ca component');
  return command[1]!;
}

for (const { label, objects: objectsFor, expected, helmTest, faultRun, setup, queueType: defaultQueueType } of suites) {
  describe(`pods from the image: ${label}`, () => {
    const names = rabbitNames('image-pods');
    const runId = `sbpods-${process.pid}-${Date.now().toString(36)}-${suites.findIndex((s) => s.label === label)}`;
    let objects: K8sObject[];
    let cluster: PodCluster;
    let api: PublisherApi;
    let servers: SuiteSetup | undefined;
    /** The channel the first message went to. */
    let channel: string;
    const clients: SocketBridgeClient[] = [];

    beforeAll(async () => {
      servers = await setup?.();
      objects = [...objectsFor(names, servers?.values ?? {}), ...(servers?.objects ?? [])];
      cluster = await PodCluster.start(objects, { namespace, runId, include: (o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] !== 'operator' });
      api = new PublisherApi(`http://127.0.0.1:${cluster.servicePort('publisher')}`, secretValue(objects, 'api-key'));
    }, 120_000);

    afterAll(async () => {
      for (const client of clients) client.close();
      await cluster?.teardown();
      await servers?.cleanup();
      await producer.deleteTopology(names);
    }, 180_000);

    it('every Deployment runs its replicas as the rendered spec says, and every probe passes', async () => {
      const counts: Record<string, number> = {};
      for (const pod of cluster.pods) counts[pod.component] = (counts[pod.component] ?? 0) + 1;
      expect(counts).toEqual(expected);
      // Exactly the rendered command line, the non-root user and the read-only root.
      for (const pod of cluster.pods) {
        expect(pod.argv.slice(-3)).toEqual([pod.container.image, ...(pod.container.args ?? [])]);
        expect(pod.container.image).toBe(IMAGE);
        expect(pod.argv).toContain('--read-only');
        expect(pod.argv[pod.argv.indexOf('--user') + 1]).toBe('1000:1000');
        // The memory limit is the container's cgroup limit (the chart sets one for every component).
        const limit = pod.container.resources?.limits?.memory;
        expect(limit, `${pod.name} has a memory limit`).toBeDefined();
        expect(Number(await podmanOk(['inspect', '--type', 'container', '--format', '{{.HostConfig.Memory}}', pod.name]))).toBe(quantity(limit!));
        // Every variable the manifest gives the container reaches it (secret keys included).
        expect(Object.keys(pod.env).sort()).toEqual((pod.container.env ?? []).map((e) => e.name).sort());
      }
      await allReady(cluster);
      // The containers really run as the pods would: user 1000, nothing writable but /tmp.
      const [first] = cluster.podsOf('publisher');
      const probe = await podman(['exec', first!.name, 'sh', '-c', 'id -u; touch /app/x 2>/dev/null && echo writable || echo read-only; touch /tmp/x && echo tmp-ok']);
      expect(probe.stdout.trim().split('\n')).toEqual(['1000', 'read-only', 'tmp-ok']);
      // Each rendered probe has passed; liveness never failed, and readiness not once the pod was ready
      // (before that a 503 is expected: e.g. a publisher waits for the cluster and RabbitMQ).
      for (const pod of cluster.pods) {
        const rendered = (['startupProbe', 'livenessProbe', 'readinessProbe'] as const).filter((p) => pod.container[p]).map((p) => p.replace('Probe', ''));
        expect(rendered.length, pod.name).toBeGreaterThan(0);
        await waitFor(() => rendered.every((kind) => pod.events.some((e) => e.kind === kind && e.ok)), 30_000, `${pod.name}: every probe passing`);
        expect(pod.events.filter((e) => e.kind === 'liveness' && !e.ok), pod.name).toEqual([]);
        const firstReady = pod.events.findIndex((e) => e.kind === 'readiness' && e.ok);
        expect(pod.events.slice(firstReady).filter((e) => e.kind === 'readiness' && !e.ok), pod.name).toEqual([]);
      }
    }, 150_000);

    it('a client signs up, connects through the workers\' Service and receives a RabbitMQ message on its channel', async () => {
      // Ready pods are enough: a worker or publisher is ready only once it is subscribed on every
      // broker of the mapping the others use (docs/reliability.md), so no wait for the cluster to converge.
      await allReady(cluster);
      const created = await api.createClient();
      channel = created.channel;
      expect(created.channel).toBe(`client.${created.clientId}`);
      const client = new SocketBridgeClient({ port: cluster.servicePort('worker'), path: '/socketcluster/', token: created.token });
      clients.push(client);
      await client.connected();
      const received: Envelope[] = [];
      await client.subscribe(created.channel, { onMessage: (envelope) => received.push(envelope) });
      await producer.publish(names.SOCKETBRIDGE_EXCHANGE, created.channel, { price: 42 }, { messageId: `order-${runId}` });
      await waitFor(() => received.length >= 1, 20_000, 'the message').catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await cluster.describe()}`);
      });
      expect(received[0]).toMatchObject({ id: `order-${runId}`, data: { price: 42 } });
    }, 60_000);

    if (setup) {
      it(`the publishers and workers trust the private CA mounted from its Secret and keep their state in the suite's TLS Redis; the default queue is ${defaultQueueType}`, async () => {
        const pem = secretValue(objects, 'ca.crt');
        const trusting = [...cluster.podsOf('publisher'), ...cluster.podsOf('worker')];
        expect(trusting.length).toBe(expected.publisher! + expected.worker!);
        for (const pod of trusting) {
          expect(pod.env.NODE_EXTRA_CA_CERTS, pod.name).toBe('/etc/socketbridge/ca/ca.crt');
          // The mounted file is the CA, readable by the container's user, and nothing else is mounted beside it.
          const read = await podman(['exec', pod.name, 'sh', '-c', 'cat "$NODE_EXTRA_CA_CERTS" && ls -A /etc/socketbridge/ca']);
          expect(read.stdout, `${pod.name}: ${read.stderr}`).toBe(`${pem}ca.crt\n`);
        }
        // Written there by the publisher (the message's history) and by every worker (its liveness entry).
        expect(await servers!.redis.exists(registryKeys.history(channel))).toBe(1);
        expect(await servers!.redis.zcount(registryKeys.liveWorkers, Date.now(), '+inf')).toBe(expected.worker);
        expect(await queueType(names.SOCKETBRIDGE_QUEUE)).toBe(defaultQueueType);
      }, 30_000);
    }

    if (helmTest) {
      it("the chart's helm test Pod, run from the image with its rendered env, passes", async () => {
        const { code, output } = await runHelmTestPod(cluster, objects, runId);
        expect(code, output).toBe(0);
      }, 150_000);
    }

    if (faultRun) {
      it('a worker stopped with SIGTERM (its grace period) and a broker killed: recovering clients lose nothing', async () => {
        await allReady(cluster);
        const subscribers: { client: SocketBridgeClient; channel: string; seen: number[]; gaps: string[] }[] = [];
        for (let i = 0; i < 6; i++) {
          const created = await api.createClient(`fault ${i}`);
          const client = new SocketBridgeClient({
            port: cluster.servicePort('worker'),
            path: '/socketcluster/',
            token: created.token,
            socketOptions: { autoReconnectOptions: { initialDelay: 200, maxDelay: 1000, randomness: 200 } },
          });
          clients.push(client);
          await client.connected();
          const record = { client, channel: created.channel, seen: [] as number[], gaps: [] as string[] };
          await client.subscribe(created.channel, {
            onMessage: (envelope) => record.seen.push((envelope.data as { seq: number }).seq),
            onGap: (gap) => record.gaps.push(gap.reason),
          });
          subscribers.push(record);
        }
        let sent = 0;
        let publishing = true;
        const publishingDone = (async () => {
          for (let seq = 0; publishing && seq < 10_000; seq++) {
            for (const s of subscribers) {
              producer.channel.publish(names.SOCKETBRIDGE_EXCHANGE, s.channel, Buffer.from(JSON.stringify({ seq })), { contentType: 'application/json', messageId: `${s.channel}:${seq}` });
            }
            await producer.channel.waitForConfirms();
            sent = seq + 1;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        })();
        const caughtUp = () => subscribers.every((s) => s.seen.length >= sent);
        await waitFor(() => sent >= 20 && subscribers.every((s) => s.seen.length > 0), 20_000, 'traffic flowing');

        // A worker pod deleted: SIGTERM, then SIGKILL after terminationGracePeriodSeconds.
        const worker = cluster.podsOf('worker')[0]!;
        expect(worker.connections, 'clients on the worker about to stop').toBeGreaterThan(0);
        const stopped = await worker.terminate();
        console.log(`worker ${worker.name}: exited ${stopped.exitCode} ${stopped.seconds.toFixed(1)} s after SIGTERM (grace ${worker.grace} s)`);
        expect(stopped.seconds).toBeLessThan(worker.grace);
        expect(stopped.exitCode).toBe(0);

        // A broker's node dies: SIGKILL.
        const broker = cluster.podsOf('broker')[0]!;
        await broker.kill();
        const atKill = sent;
        await waitFor(() => sent >= atKill + 40, 30_000, 'publishing on after the broker died');
        publishing = false;
        await publishingDone;
        await waitFor(caughtUp, 45_000, 'every client caught up').catch(async (error: Error) => {
          throw new Error(`${error.message}: ${subscribers.map((s) => `${s.seen.length}/${sent}`).join(' ')}\n${await cluster.describe()}`);
        });
        for (const s of subscribers) {
          expect(s.gaps, s.channel).toEqual([]);
          expect(s.seen, s.channel).toEqual(Array.from({ length: sent }, (_, i) => i));
        }
        const stats = subscribers.map((s) => s.client.stats);
        console.log(`fault run: ${sent} rounds x ${subscribers.length} clients, 0 lost; recovered ${stats.reduce((n, s) => n + s.recovered, 0)} from history`);
      }, 180_000);
    }
  });
}
