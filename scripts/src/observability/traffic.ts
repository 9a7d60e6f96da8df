// Traffic that makes every SocketBridge metric move: signed-in clients on every worker (through the
// client library), RabbitMQ messages and admin publishes, refused handshakes and subscriptions, and
// a dead-lettered message.
import { SocketBridgeClient } from '@socketbridge/client';
import { AmqpProducer, PublisherApi, handshakeRefusal, waitFor, type LocalCluster, type RabbitNames } from '@socketbridge/devkit';

export interface TrafficCounts {
  published: number;
  received: number;
  refusedHandshakes: number;
  refusedSubscriptions: number;
  deadLettered: number;
}

export class Traffic {
  readonly counts: TrafficCounts = { published: 0, received: 0, refusedHandshakes: 0, refusedSubscriptions: 0, deadLettered: 0 };
  private readonly clients: Array<{ client: SocketBridgeClient; channel: string }> = [];
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private seq = 0;

  private constructor(
    readonly cluster: LocalCluster,
    readonly names: RabbitNames,
    readonly api: PublisherApi,
    readonly producer: AmqpProducer,
  ) {}

  /** Signs up `clientsPerWorker` clients per worker and subscribes each to its own channel and `broadcast`. */
  static async start(cluster: LocalCluster, names: RabbitNames, clientsPerWorker = 2): Promise<Traffic> {
    const publisher = cluster.publishers[0];
    if (!publisher) throw new Error('traffic needs a publisher in the cluster');
    const api = new PublisherApi(`http://127.0.0.1:${publisher.port}`, cluster.env.SOCKETBRIDGE_API_KEY);
    const traffic = new Traffic(cluster, names, api, await AmqpProducer.connect());
    for (const worker of cluster.workers) {
      for (let i = 0; i < clientsPerWorker; i++) {
        const created = await api.createClient(`traffic ${worker.name} ${i}`);
        const client = new SocketBridgeClient({ hostname: '127.0.0.1', port: worker.port, token: created.token });
        traffic.clients.push({ client, channel: created.channel });
        await client.connected();
        const onMessage = () => {
          traffic.counts.received++;
        };
        // since 0-0: the client asks the worker's `recover` for the channel's history first.
        await client.subscribe(created.channel, { since: '0-0', onMessage });
        await client.subscribe('broadcast', { onMessage });
      }
    }
    return traffic;
  }

  /** A handshake with a forged token and a subscription to another client's channel, on every worker. */
  async refusals(): Promise<void> {
    for (const worker of this.cluster.workers) {
      await handshakeRefusal(worker.port, { token: 'not.a.token' });
      this.counts.refusedHandshakes++;
    }
    for (let i = 0; i < this.clients.length; i++) {
      const mine = this.clients[i]!;
      const other = this.clients[(i + 1) % this.clients.length]!;
      const refused = await mine.client.subscribe(other.channel, { onMessage: () => undefined }).then(
        () => false,
        () => true,
      );
      if (!refused) throw new Error(`a client could subscribe to ${other.channel}`);
      this.counts.refusedSubscriptions++;
    }
  }

  /** A message whose content type says JSON but whose body is not: the publisher dead-letters it. */
  async deadLetter(): Promise<void> {
    const channel = this.clients[0]?.channel ?? 'broadcast';
    await this.producer.publish(this.names.SOCKETBRIDGE_EXCHANGE, channel, Buffer.from('{not json'), { contentType: 'application/json' });
    this.counts.deadLettered++;
  }

  /** One round: a RabbitMQ message on every client's channel and an admin publish on `broadcast`. */
  async round(): Promise<void> {
    const seq = this.seq++;
    await Promise.all(
      this.clients.map(({ channel }) => this.producer.publish(this.names.SOCKETBRIDGE_EXCHANGE, channel, { seq, at: Date.now() })),
    );
    const { status, body } = await this.api.request('POST', '/v1/publish', { channel: 'broadcast', data: { seq, broadcast: true } });
    if (status !== 202) throw new Error(`admin publish: ${status} ${JSON.stringify(body)}`);
    this.counts.published += this.clients.length + 1;
  }

  /** Pause between rounds while trickling; may change while it runs. */
  intervalMs = 250;

  /** Rounds every `intervalMs` until stop(), so rates stay above zero while Prometheus scrapes. */
  trickle(intervalMs = this.intervalMs): void {
    this.intervalMs = intervalMs;
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.round().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
      }
    })();
  }

  /** Waits until the clients received `count` messages in all. */
  async received(count: number, timeoutMs = 20000): Promise<void> {
    await waitFor(() => this.counts.received >= count, timeoutMs, `${count} messages at the clients (have ${this.counts.received})`, 50);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    for (const { client } of this.clients) client.close();
    await this.producer.close();
  }
}
