import { killAll } from './processes.js';
import { LocalCluster, devSecrets, type LocalClusterOptions } from './cluster.js';
import { AmqpProducer, PublisherApi, rabbitNames, type RabbitNames } from './publisher-api.js';

export interface PublisherTestbed {
  cluster: LocalCluster;
  names: RabbitNames;
  /** The publisher's REST API with the admin key, and without. */
  api: PublisherApi;
  anonymous: PublisherApi;
  /** Stops every process and removes the file's exchanges and queues (for afterAll). */
  teardown: () => Promise<void>;
}

/**
 * What most publisher-facing test files start with: a local cluster with one publisher on RabbitMQ
 * names of the file's own, and its REST API.
 */
export async function startPublisherTestbed(
  prefix: string,
  options: LocalClusterOptions & { brokers?: number; workers?: number } = {},
): Promise<PublisherTestbed> {
  const names = rabbitNames(prefix);
  const cluster = await LocalCluster.start({ brokers: 1, workers: 1, ...options, publishers: 1, env: { ...names, ...options.env } });
  const base = `http://127.0.0.1:${cluster.publishers[0]!.port}`;
  return {
    cluster,
    names,
    api: new PublisherApi(base, devSecrets.SOCKETBRIDGE_API_KEY),
    anonymous: new PublisherApi(base),
    async teardown() {
      const producer = await AmqpProducer.connect();
      await producer.deleteTopology(names);
      await producer.close();
      await cluster.stop();
      await killAll();
    },
  };
}
