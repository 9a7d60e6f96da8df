import { randomUUID } from 'node:crypto';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import {
  CHANNEL_NAME,
  Counter,
  connectRabbit,
  parseRabbitUrls,
  redactUrl,
  Gauge,
  Histogram,
  findPolicy,
  metricDefs,
  queueArguments,
  renderTemplate,
  type HistoryPolicy,
  type QueueType,
  type Logger,
  type Registry,
  type BridgeWatcher,
} from '@socketbridge/common';
import type { PublisherConfig } from './config.js';
import { AckBatcher } from './acks.js';
import { decodeBody } from './decode.js';
import type { Pipeline } from './pipeline.js';
import { StreamProgress, contentHash, redeliveryOf, type StreamOffsets } from './stream-offsets.js';

/** A queue this publisher consumes, its type, and the template that names each message's channel. */
interface QueueSpec {
  name: string;
  route: string;
  type: QueueType;
}

interface Consumer {
  spec: QueueSpec;
  channel: ConfirmChannel;
  tag: string;
  /** Stream queues: which offsets are handled, so the consumer resumes after them. */
  stream?: StreamProgress;
}

/** How often a connected publisher checks whether the cluster can take messages yet. */
const CLUSTER_POLL_MS = 50;

export const REASON_HEADER = 'x-socketbridge-reason';
export const DETAIL_HEADER = 'x-socketbridge-detail';

/**
 * RabbitMQ in: one confirm channel per queue (a failing queue cannot take the others down),
 * manual acks after the cluster took the message, poison to the dead-letter exchange with a
 * reason, and reconnection with backoff that resumes every consumer.
 */
export class RabbitConsumer {
  private connection: ChannelModel | undefined;
  private connecting: Promise<void> | undefined;
  private wanted = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly consumers = new Map<string, Consumer>();
  /** Each channel's acks, one frame per turn (acks.ts). */
  private readonly ackBatchers = new WeakMap<ConfirmChannel, AckBatcher>();
  private inFlight = 0;
  private waitingForCluster = false;
  private readonly metrics;
  private readonly defaultHistory: HistoryPolicy;
  /** SOCKETBRIDGE_RABBITMQ_URL's nodes, and the one to try first at the next connect. */
  private readonly nodes: string[];
  private nextNode = 0;
  /** Stream queue → the offset to consume from next: the last resume offset seen, or a failed message's. */
  private readonly resumeFrom = new Map<string, number>();
  /** Stream queue → its resume offset's write to Redis under way (one at a time, the latest value wins). */
  private readonly offsetWrites = new Map<string, Promise<void>>();
  /**
   * RabbitMQ refused the default queue's declaration (406: it exists with another type or
   * arguments): not consumed until a later connection declares it (consuming it as the wrong type
   * would read a classic queue as a stream, or the reverse).
   */
  private defaultRefused = false;

  constructor(
    private readonly config: PublisherConfig,
    private readonly logger: Logger,
    private readonly pipeline: Pipeline,
    private readonly watcher: BridgeWatcher,
    registry: Registry,
    private readonly instanceId: string,
    private readonly offsets: StreamOffsets,
  ) {
    this.nodes = parseRabbitUrls(config.SOCKETBRIDGE_RABBITMQ_URL);
    this.defaultHistory = { size: config.SOCKETBRIDGE_HISTORY_SIZE, ttlSeconds: config.SOCKETBRIDGE_HISTORY_TTL_SECONDS };
    const consumers = this.consumers;
    const connected = () => this.connection !== undefined;
    const defaultRefused = () => this.defaultRefused;
    this.metrics = {
      consumed: new Counter({ ...metricDefs.messagesConsumed, registers: [registry] }),
      acked: new Counter({ ...metricDefs.messagesAcked, registers: [registry] }),
      deadLettered: new Counter({ ...metricDefs.messagesDeadLettered, registers: [registry] }),
      requeued: new Counter({ ...metricDefs.messagesRequeued, registers: [registry] }),
      latency: new Histogram({ ...metricDefs.rabbitToPublish, buckets: [...metricDefs.rabbitToPublish.buckets], registers: [registry] }),
      connected: new Gauge({ ...metricDefs.rabbitConnected, registers: [registry], collect() { this.set(connected() ? 1 : 0); } }),
      consumerCount: new Gauge({ ...metricDefs.consumers, registers: [registry], collect() { this.set(consumers.size); } }),
      // Otherwise only a log line tells that the default queue is left alone: dashboards and alerts read this.
      defaultQueueRefused: new Gauge({ ...metricDefs.defaultQueueRefused, registers: [registry], collect() { this.set(defaultRefused() ? 1 : 0); } }),
    };
  }

  get isConnected(): boolean {
    return this.connection !== undefined;
  }

  get isWanted(): boolean {
    return this.wanted;
  }

  status() {
    return { consuming: this.wanted, connected: this.isConnected, queues: [...this.consumers.keys()].sort() };
  }

  /**
   * Idempotent: the first call starts consuming, later calls change nothing. Resolves once the
   * connection attempt under way, if any, is over (connected and consuming its queues, or failed and
   * retrying), so a caller that then reads `status()` does not see a connection without its queues;
   * the exception is a publisher whose cluster link is not ready yet, which consumes once it is.
   */
  async start(): Promise<void> {
    if (!this.wanted) {
      this.wanted = true;
      void this.connect();
    }
    await this.connecting;
  }

  /** Bridges changed in the registry: consume new queues, cancel removed ones. */
  bridgesChanged(): void {
    if (this.connection) this.scheduleSync(0);
  }

  private desired(): QueueSpec[] {
    const c = this.config;
    const specs = new Map<string, QueueSpec>(this.defaultRefused ? [] : [[c.SOCKETBRIDGE_QUEUE, { name: c.SOCKETBRIDGE_QUEUE, route: '{routingKey}', type: c.SOCKETBRIDGE_QUEUE_TYPE }]]);
    for (const bridge of this.watcher.bridges()) {
      for (const queue of bridge.queues) specs.set(queue.name, { name: queue.name, route: queue.route.channel, type: queue.type ?? 'classic' });
    }
    return [...specs.values()];
  }

  private async connect(): Promise<void> {
    if (this.connecting || this.connection || !this.wanted) return this.connecting;
    this.connecting = (async () => {
      let connection: ChannelModel | undefined;
      try {
        // A cluster's nodes in turn, from the one after the node we last lost (docs/scaling.md).
        const connected = await connectRabbit(this.nodes, {
          first: this.nextNode,
          timeoutMs: this.config.SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS,
          connectionName: `socketbridge-publisher ${this.instanceId}`,
        });
        connection = connected.connection;
        this.nextNode = (connected.index + 1) % this.nodes.length;
        connection.on('error', (error: Error) => this.logger.warn({ err: error.message }, 'rabbitmq connection error'));
        connection.on('close', () => this.onConnectionClosed(connection!));
        await this.declareDefaults(connection);
        this.connection = connection;
        this.attempt = 0;
        this.logger.info({ node: redactUrl(this.nodes[connected.index]!) }, 'connected to rabbitmq');
        await this.sync();
      } catch (error) {
        this.logger.warn({ err: (error as Error).message, attempt: this.attempt }, 'rabbitmq connect failed');
        if (connection && this.connection !== connection) await connection.close().catch(() => undefined);
        this.scheduleReconnect();
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private onConnectionClosed(connection: ChannelModel): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.consumers.clear();
    this.logger.warn('rabbitmq connection closed');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (!this.wanted || this.reconnectTimer) return;
    const base = Math.min(100 * 2 ** this.attempt, this.config.SOCKETBRIDGE_RECONNECT_MAX_MS);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
  }

  /**
   * The default bridge and the dead-letter path: a topic exchange whose routing key is the channel.
   * Each queue on a channel of its own: in a cluster a classic queue whose node is down answers 404
   * until that node is back, and that must not keep the publisher from its other queues (the next
   * sync consumes the default queue once it answers again).
   */
  private async declareDefaults(connection: ChannelModel): Promise<void> {
    const c = this.config;
    await this.onChannel(connection, async (channel) => {
      await channel.assertExchange(c.SOCKETBRIDGE_EXCHANGE, 'topic', { durable: true });
      await channel.assertExchange(c.SOCKETBRIDGE_DEAD_LETTER_EXCHANGE, 'fanout', { durable: true });
    });
    // The default queue's arguments as a bridge queue's (one definition: queueArguments).
    const defaultArguments = queueArguments({
      name: c.SOCKETBRIDGE_QUEUE,
      durable: true,
      singleActiveConsumer: c.SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER,
      type: c.SOCKETBRIDGE_QUEUE_TYPE,
      bindings: [],
      route: { channel: '{routingKey}' },
    });
    const queues = [
      { name: c.SOCKETBRIDGE_QUEUE, exchange: c.SOCKETBRIDGE_EXCHANGE, pattern: '#', arguments: defaultArguments },
      { name: c.SOCKETBRIDGE_DEAD_LETTER_QUEUE, exchange: c.SOCKETBRIDGE_DEAD_LETTER_EXCHANGE, pattern: '', arguments: {} },
    ];
    this.defaultRefused = false;
    for (const queue of queues) {
      try {
        await this.onChannel(connection, async (channel) => {
          await channel.assertQueue(queue.name, { durable: true, arguments: queue.arguments });
          await channel.bindQueue(queue.name, queue.exchange, queue.pattern);
        });
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code !== 'number') throw error; // the connection, not the queue
        if (code === 406 && queue.name === c.SOCKETBRIDGE_QUEUE) {
          // Declared earlier with another type or arguments: RabbitMQ cannot change them in place.
          this.defaultRefused = true;
          this.logger.error(
            { queue: queue.name, type: c.SOCKETBRIDGE_QUEUE_TYPE, singleActiveConsumer: c.SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER, err: (error as Error).message },
            'the default queue exists with another type or arguments than SOCKETBRIDGE_QUEUE_TYPE and SOCKETBRIDGE_QUEUE_SINGLE_ACTIVE_CONSUMER ask for: not consuming it (docs/configuration.md, changing the default queue type)',
          );
          continue;
        }
        this.logger.warn({ queue: queue.name, err: (error as Error).message }, 'cannot declare queue now');
      }
    }
  }

  private async onChannel(connection: ChannelModel, fn: (channel: Channel) => Promise<void>): Promise<void> {
    const channel = await connection.createChannel();
    // A 404 or 406 closes the channel with an 'error' event as well as the rejected call.
    channel.on('error', () => undefined);
    try {
      await fn(channel);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  private scheduleSync(delay: number): void {
    clearTimeout(this.syncTimer);
    this.syncTimer = setTimeout(() => void this.sync(), delay);
  }

  private async sync(): Promise<void> {
    const connection = this.connection;
    if (!connection || !this.wanted) return;
    // Not before the cluster can take them: a message taken earlier would only fail and wait out
    // the requeue delay. The link turns ready once and stays so (cluster-link.ts).
    if (!this.pipeline.ready) {
      if (!this.waitingForCluster) this.logger.info('waiting for the cluster before consuming');
      this.waitingForCluster = true;
      this.scheduleSync(CLUSTER_POLL_MS);
      return;
    }
    this.waitingForCluster = false;
    const desired = this.desired();
    const names = new Set(desired.map((s) => s.name));
    for (const [name, consumer] of this.consumers) {
      const wanted = desired.find((s) => s.name === name);
      if (wanted && wanted.route === consumer.spec.route && wanted.type === consumer.spec.type) continue;
      this.consumers.delete(name);
      await consumer.channel.close().catch(() => undefined);
      if (!names.has(name)) this.logger.info({ queue: name }, 'stopped consuming');
    }
    for (const spec of desired) {
      if (this.consumers.has(spec.name)) continue;
      try {
        await this.consume(connection, spec);
      } catch (error) {
        // A missing queue closes only its own channel; try again later (the operator may still be declaring it).
        this.logger.warn({ queue: spec.name, err: (error as Error).message }, 'cannot consume queue yet');
        this.scheduleSync(Math.min(1000 * 2 ** Math.min(this.attempt, 3), this.config.SOCKETBRIDGE_RECONNECT_MAX_MS));
      }
    }
  }

  private async consume(connection: ChannelModel, spec: QueueSpec): Promise<void> {
    const channel = await connection.createConfirmChannel();
    channel.on('error', (error: Error) => this.logger.warn({ queue: spec.name, err: error.message }, 'rabbitmq channel error'));
    channel.on('close', () => {
      if (this.consumers.get(spec.name)?.channel !== channel) return;
      this.consumers.delete(spec.name);
      if (this.connection === connection && this.wanted) this.scheduleSync(500);
    });
    await channel.prefetch(this.config.SOCKETBRIDGE_PREFETCH);
    const stream = spec.type === 'stream' ? new StreamProgress() : undefined;
    // A stream keeps its messages: start after the last one handled (this process's memory, else
    // Redis); a stream never consumed starts with what arrives from now on.
    const from = stream ? (this.resumeFrom.get(spec.name) ?? (await this.offsets.get(spec.name)) ?? 'next') : undefined;
    const { consumerTag } = await channel.consume(
      spec.name,
      (message) => {
        if (message) void this.handle(channel, spec, message, stream);
        // null: the broker cancelled us (queue deleted); the close handler or the next sync resumes.
        else this.scheduleSync(500);
      },
      from === undefined ? {} : { arguments: { 'x-stream-offset': from } },
    );
    this.consumers.set(spec.name, { spec, channel, tag: consumerTag, ...(stream ? { stream } : {}) });
    // Each queue's series start at 0, so dashboards show the queue before its first message.
    for (const counter of [this.metrics.consumed, this.metrics.acked, this.metrics.requeued]) counter.inc({ queue: spec.name }, 0);
    this.logger.info({ queue: spec.name, type: spec.type, route: spec.route, prefetch: this.config.SOCKETBRIDGE_PREFETCH, ...(from === undefined ? {} : { from }) }, 'consuming');
  }

  private async handle(channel: ConfirmChannel, spec: QueueSpec, message: ConsumeMessage, stream?: StreamProgress): Promise<void> {
    const offset = stream ? Number((message.properties.headers as Record<string, unknown> | undefined)?.['x-stream-offset']) : NaN;
    stream?.begin(offset);
    this.inFlight++;
    try {
      const handled = await this.process(channel, spec, message, offset);
      if (stream) {
        if (handled) this.streamHandled(spec.name, stream, offset);
        else this.streamRetry(spec.name, channel, stream);
      } else if (!handled) {
        this.settle(channel, () => this.acks(channel).nack(message, true));
      }
    } finally {
      this.inFlight--;
    }
  }

  /** Publishes or dead-letters one message: true once that is done, false when it must be tried again. */
  private async process(channel: ConfirmChannel, spec: QueueSpec, message: ConsumeMessage, streamOffset: number): Promise<boolean> {
    const started = Date.now();
    const queue = spec.name;
    this.metrics.consumed.inc({ queue });
    try {
      if (message.content.length > this.config.SOCKETBRIDGE_MAX_MESSAGE_BYTES) {
        return await this.deadLetter(channel, queue, message, 'oversized', `${message.content.length} bytes > ${this.config.SOCKETBRIDGE_MAX_MESSAGE_BYTES}`);
      }
      const decoded = decodeBody(message.content, message.properties.contentType as string | undefined, message.properties.contentEncoding as string | undefined);
      if (!decoded.ok) return await this.deadLetter(channel, queue, message, 'unparseable', decoded.detail);
      const rendered = renderTemplate(spec.route, {
        routingKey: message.fields.routingKey,
        headers: (message.properties.headers ?? {}) as Record<string, unknown>,
        body: decoded.data,
      });
      if (!rendered.ok) return await this.deadLetter(channel, queue, message, 'unroutable', `route ${spec.route} needs ${rendered.missing}`);
      if (!CHANNEL_NAME.test(rendered.value)) {
        return await this.deadLetter(channel, queue, message, 'unroutable', `${JSON.stringify(rendered.value.slice(0, 100))} is not a channel name`);
      }
      const policy = findPolicy(this.watcher.policies(), rendered.value)?.policy;
      const history = policy?.history ?? this.defaultHistory;
      try {
        // Every append is idempotent by id, so a message handled twice keeps one offset: the
        // producer's messageId; a stream's own offset; else an id the append keeps across
        // redeliveries (a fresh one here, replaced there by the one recorded for a redelivery).
        const messageId = message.properties.messageId as unknown;
        const input = { channel: rendered.value, ts: started, data: decoded.data, history, idempotent: true };
        // A failed step is tried again in place for a while, keeping the channel's order (pipeline.ts).
        const retryForMs = this.config.SOCKETBRIDGE_PUBLISH_RETRY_MS;
        if (typeof messageId === 'string' && messageId.length > 0 && messageId.length <= 200) {
          await this.pipeline.publish({ ...input, id: messageId }, retryForMs);
        } else if (!Number.isNaN(streamOffset)) {
          // The content too: a stream deleted and declared again restarts its offsets at 0.
          await this.pipeline.publish({ ...input, id: `stream:${queue}:${streamOffset}:${contentHash(queue, message).slice(0, 16)}` }, retryForMs);
        } else {
          await this.pipeline.publish({ ...input, id: randomUUID(), redelivery: redeliveryOf(queue, rendered.value, message) }, retryForMs);
        }
      } catch (error) {
        // History or the cluster stayed away past SOCKETBRIDGE_PUBLISH_RETRY_MS (or the publisher is
        // stopping): hand the message back, after a pause so it does not spin.
        this.metrics.requeued.inc({ queue });
        this.logger.warn({ queue, err: (error as Error).message }, 'could not publish: requeueing');
        await new Promise((resolve) => setTimeout(resolve, this.config.SOCKETBRIDGE_REQUEUE_DELAY_MS));
        return false;
      }
      if (this.settle(channel, () => this.acks(channel).ack(message))) {
        this.metrics.acked.inc({ queue });
        this.metrics.latency.observe((Date.now() - started) / 1000);
      }
      return true;
    } catch (error) {
      this.logger.error({ queue, err: (error as Error).message }, 'message handling failed: requeueing');
      return false;
    }
  }

  private acks(channel: ConfirmChannel): AckBatcher {
    let batcher = this.ackBatchers.get(channel);
    if (!batcher) this.ackBatchers.set(channel, (batcher = new AckBatcher(channel)));
    return batcher;
  }

  /** A stream message is done: move the resume offset past it (and every earlier one) and store it. */
  private streamHandled(queue: string, stream: StreamProgress, offset: number): void {
    // A consumer closed for a retry keeps finishing its messages; its progress no longer counts.
    if (this.consumers.get(queue)?.stream !== stream || !stream.done(offset)) return;
    this.resumeFrom.set(queue, stream.resumeAt!);
    this.storeOffset(queue);
  }

  /**
   * A stream does not requeue (nack is not redelivery there): consume it again from the first
   * message not yet handled, after the requeue delay. Messages after it that were handled come
   * again; their history append is idempotent by message id (docs/reliability.md).
   */
  private streamRetry(queue: string, channel: ConfirmChannel, stream: StreamProgress): void {
    const consumer = this.consumers.get(queue);
    if (consumer?.stream !== stream) return;
    this.resumeFrom.set(queue, stream.firstPending!); // the failed message is pending, so there is one
    this.consumers.delete(queue);
    void channel.close().catch(() => undefined);
    this.logger.warn({ queue, from: this.resumeFrom.get(queue) }, 'stream: consuming again from the first message not handled');
    this.scheduleSync(0);
  }

  /** Writes the queue's resume offset to Redis, one write at a time per queue, the latest value last. */
  private storeOffset(queue: string): void {
    if (this.offsetWrites.has(queue)) return; // the write under way reads the latest value when it is done
    const write = (async () => {
      let written: number | undefined;
      while (this.resumeFrom.get(queue) !== written) {
        written = this.resumeFrom.get(queue)!;
        try {
          await this.offsets.set(queue, written);
        } catch (error) {
          // Redis away: memory keeps the offset for this process; the next handled message writes again.
          this.logger.warn({ queue, err: (error as Error).message }, 'could not store the stream offset');
          return;
        }
      }
    })().finally(() => this.offsetWrites.delete(queue));
    this.offsetWrites.set(queue, write);
  }

  /** Acks and nacks on a channel that closed meanwhile throw; RabbitMQ redelivers those messages. */
  private settle(_channel: ConfirmChannel, action: () => void): boolean {
    try {
      action();
      return true;
    } catch {
      return false;
    }
  }

  private async deadLetter(channel: ConfirmChannel, queue: string, message: ConsumeMessage, reason: string, detail: string): Promise<true> {
    const { properties, fields } = message;
    this.logger.warn({ queue, reason, detail, routingKey: fields.routingKey }, 'dead-lettering a message');
    await new Promise<void>((resolve, reject) =>
      channel.publish(
        this.config.SOCKETBRIDGE_DEAD_LETTER_EXCHANGE,
        fields.routingKey,
        message.content,
        {
          contentType: properties.contentType as string | undefined,
          contentEncoding: properties.contentEncoding as string | undefined,
          messageId: properties.messageId as string | undefined,
          timestamp: properties.timestamp as number | undefined,
          persistent: true,
          headers: {
            ...(properties.headers ?? {}),
            [REASON_HEADER]: reason,
            [DETAIL_HEADER]: detail,
            'x-socketbridge-queue': queue,
            'x-socketbridge-exchange': fields.exchange,
          },
        },
        (error: unknown) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()),
      ),
    );
    if (this.settle(channel, () => this.acks(channel).ack(message))) this.metrics.deadLettered.inc({ queue, reason });
    return true;
  }

  /** Stops taking messages, lets the ones in flight finish (ack or requeue), then closes. */
  async stop(timeoutMs: number): Promise<void> {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.syncTimer);
    await Promise.all([...this.consumers.values()].map((c) => c.channel.cancel(c.tag).catch(() => undefined)));
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await Promise.all(this.offsetWrites.values());
    const connection = this.connection;
    this.connection = undefined;
    this.consumers.clear();
    await connection?.close().catch(() => undefined);
  }
}
