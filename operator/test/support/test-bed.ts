import type { Redis } from 'ioredis';
import { registryKeys } from '@socketbridge/common';
import { killAll, type ManagedProcess } from '@socketbridge/devkit';
import { FakeApiServer } from './fake-apiserver.js';
import { KubeUser, scratchDir, startOperator } from './kube.js';
import { RABBITMQ_URL, RabbitAdmin, cleanRegistry, proxiedUrl, testRedis } from './services.js';
import { TcpProxy } from './tcp-proxy.js';

export interface TestBedOptions {
  /**
   * The file's namespaces: each gets a `rabbitmq` Secret naming the test run's RabbitMQ, and the
   * registry entries of their SocketBridges (`<namespace>-<name>`) are removed afterwards.
   */
  namespaces?: string[];
  /** Registry entries removed afterwards by their full name (bridges applied without the API server). */
  bridges?: string[];
  /** Queues and exchanges the file's bridges declare: deleted afterwards. */
  queues?: string[];
  exchanges?: string[];
  /** Start the stand-in API server and its user (default true; the CLI and reconciler tests need neither). */
  apiServer?: boolean;
  /** The stand-in sends watch bookmarks this often (default: never). */
  bookmarkIntervalMs?: number;
  /**
   * A TCP proxy in front of RabbitMQ, which a test stops and starts to "restart" RabbitMQ.
   * `'secrets'`: the namespaces' `rabbitmq` Secrets name the proxy rather than RabbitMQ itself.
   */
  proxy?: boolean | 'secrets';
}

/**
 * What an operator test file stands on: the stand-in API server (test/support/fake-apiserver.ts)
 * with a user to create SocketBridges, the test run's RabbitMQ and Redis (database 13), an optional
 * TCP proxy in front of RabbitMQ, a scratch folder for kubeconfigs, and operator processes, all
 * removed by `stop()` together with the queues, exchanges and registry entries the file names.
 */
export class OperatorTestBed {
  fake!: FakeApiServer;
  user!: KubeUser;
  rabbit!: RabbitAdmin;
  redis!: Redis;
  proxy!: TcpProxy;
  readonly scratch = scratchDir();
  private readonly operators: ManagedProcess[] = [];

  constructor(private readonly options: TestBedOptions = {}) {}

  async start(): Promise<this> {
    const { namespaces = [], apiServer = true, proxy } = this.options;
    if (apiServer) {
      this.fake = new FakeApiServer();
      if (this.options.bookmarkIntervalMs !== undefined) this.fake.bookmarkIntervalMs = this.options.bookmarkIntervalMs;
      await this.fake.start();
      this.user = new KubeUser(this.fake);
    }
    if (proxy) {
      const rabbitmq = new URL(RABBITMQ_URL);
      this.proxy = new TcpProxy(rabbitmq.hostname, Number(rabbitmq.port || 5672));
      await this.proxy.start();
    }
    this.rabbit = await RabbitAdmin.connect();
    this.redis = testRedis();
    const secretUrl = proxy === 'secrets' ? proxiedUrl(this.proxy.port) : RABBITMQ_URL;
    for (const namespace of namespaces) await this.user.createSecret(namespace, 'rabbitmq', secretUrl);
    return this;
  }

  /** An operator replica with a kubeconfig of its own (its client name in the stand-in is `label`); stopped by `stop()`. */
  operator(label: string, env: Record<string, string> = {}): ManagedProcess {
    const process = startOperator(label, this.fake.writeKubeconfig(this.scratch.path, label), env);
    this.operators.push(process);
    return process;
  }

  async stop(): Promise<void> {
    const { namespaces = [], bridges = [], queues = [], exchanges = [] } = this.options;
    for (const process of this.operators) if (process.running) await process.stop('SIGTERM', 5000);
    await killAll();
    await this.rabbit?.cleanUp(queues, exchanges);
    if (this.redis) {
      const mine = (await this.redis.hkeys(registryKeys.bridges)).filter((name) => bridges.includes(name) || namespaces.some((ns) => name.startsWith(`${ns}-`)));
      await cleanRegistry(this.redis, mine);
      this.redis.disconnect();
    }
    await this.rabbit?.close();
    await this.proxy?.stop();
    await this.fake?.stop();
    this.scratch.dispose();
  }
}
