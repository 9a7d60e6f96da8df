import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { connectRabbit, Counter, Gauge, metricDefs, NO_CLIENT, redactUrl, type LifecycleEvent, type Logger, type Registry, withTimeout } from '@socketbridge/common';

export interface LifecycleEventsOptions {
  /** A RabbitMQ cluster's nodes (parseRabbitUrls), tried in turn: one URL is a list of one. */
  urls: string[];
  /** Bound on each node's connection attempt (SOCKETBRIDGE_RABBITMQ_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs: number;
  exchange: string;
  /** Most events waiting in memory; past it new events are dropped (and counted). */
  queueLimit: number;
  /** Most events published and not yet confirmed. */
  maxInFlight: number;
  /** Confirms not back within this: the connection is taken as dead, closed, and its events sent again. */
  confirmTimeoutMs: number;
  reconnectMaxMs: number;
  instanceId: string;
  logger: Logger;
  registry: Registry;
}

interface Pending {
  routingKey: string;
  body: Buffer;
}

/** `<event>.<channel or client>`: a topic exchange's consumers bind e.g. `disconnect.*` or `subscribe.room.#`. */
export function routingKeyOf(event: LifecycleEvent): string {
  const subject = event.event === 'subscribe' || event.event === 'unsubscribe' ? event.channel : event.clientId;
  return `${event.event}.${subject || NO_CLIENT}`;
}

/**
 * Lifecycle events into RabbitMQ, never in a socket's way. `emit` only appends to a bounded queue in
 * memory (a full queue drops the event and counts it); a loop publishes from it on a confirm
 * channel, persistent, at most `maxInFlight` unconfirmed. Events are taken off the queue only once
 * RabbitMQ confirmed them: those in flight when the connection dies (or stops confirming) go back
 * to the front and are sent again after the reconnect, so a consumer may see one twice (at least
 * once) but in the order they happened per worker.
 */
export class LifecycleEvents {
  private readonly queue: Pending[] = [];
  /** How many of the queue's first entries are published and awaiting their confirm. */
  private inFlight = 0;
  private connection: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private connecting = false;
  private attempt = 0;
  /** The node to try first at the next connect: the one after the node last connected to. */
  private nextNode = 0;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private confirmTimer: NodeJS.Timeout | undefined;
  /** Bumped per connection: confirms of an older one no longer count. */
  private generation = 0;
  private readonly published: Counter;
  private readonly dropped: Counter<'reason'>;

  constructor(private readonly options: LifecycleEventsOptions) {
    this.published = new Counter({ ...metricDefs.eventsPublished, registers: [options.registry] });
    this.dropped = new Counter({ ...metricDefs.eventsDropped, registers: [options.registry] });
    for (const reason of ['overflow', 'nacked']) this.dropped.inc({ reason }, 0);
    const queue = this.queue;
    new Gauge({ ...metricDefs.eventsQueued, registers: [options.registry], collect() { this.set(queue.length); } });
  }

  start(): void {
    void this.connect();
  }

  /** Queues an event; never waits and never throws. */
  emit(event: Omit<LifecycleEvent, 'ts' | 'worker'>): void {
    if (this.stopped) return;
    if (this.queue.length >= this.options.queueLimit) {
      this.dropped.inc({ reason: 'overflow' });
      return;
    }
    const full: LifecycleEvent = { ...event, ts: Date.now(), worker: this.options.instanceId } as LifecycleEvent;
    this.queue.push({ routingKey: routingKeyOf(full), body: Buffer.from(JSON.stringify(full)) });
    this.pump();
  }

  /** At shutdown: waits (bounded) for what is queued to be confirmed, then closes. */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0 && this.channel && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.confirmTimer);
    await this.connection?.close().catch(() => undefined);
  }

  private pump(): void {
    const channel = this.channel;
    if (!channel) return;
    const generation = this.generation;
    while (this.inFlight < this.options.maxInFlight && this.inFlight < this.queue.length) {
      const item = this.queue[this.inFlight]!;
      this.inFlight++;
      channel.publish(this.options.exchange, item.routingKey, item.body, { persistent: true, contentType: 'application/json' }, (error) => {
        if (generation !== this.generation) return; // that connection is gone; its events were put back
        // amqplib fails every unconfirmed publish with 'channel closed' when the channel goes: not a
        // refusal, so the events stay queued for the next connection. Only a nack is RabbitMQ's no.
        if (error && (error as Error).message !== 'message nacked') this.lost(generation);
        else this.confirmed(item, error);
      });
    }
    if (this.inFlight > 0 && !this.confirmTimer) {
      this.confirmTimer = setTimeout(() => {
        this.confirmTimer = undefined;
        if (generation !== this.generation || this.inFlight === 0) return;
        this.options.logger.warn({ inFlight: this.inFlight }, 'RabbitMQ did not confirm lifecycle events in time: reconnecting');
        this.lost(generation);
      }, this.options.confirmTimeoutMs);
      this.confirmTimer.unref();
    }
  }

  /** Confirms arrive in publish order on one channel: the confirmed (or nacked) event is the queue's first. */
  private confirmed(item: Pending, error: unknown): void {
    const index = this.queue.indexOf(item);
    if (index < 0 || index >= this.inFlight) return;
    this.queue.splice(index, 1);
    this.inFlight--;
    if (error) this.dropped.inc({ reason: 'nacked' });
    else this.published.inc();
    clearTimeout(this.confirmTimer);
    this.confirmTimer = undefined;
    this.pump();
  }

  /** The connection died or stalled: its unconfirmed events stay at the queue's front, to be sent again. */
  private lost(generation: number): void {
    if (generation !== this.generation) return;
    this.generation++;
    this.inFlight = 0;
    const connection = this.connection;
    this.connection = undefined;
    this.channel = undefined;
    clearTimeout(this.confirmTimer);
    this.confirmTimer = undefined;
    // A stalled connection may never answer a close: drop the socket under it.
    (connection as unknown as { connection?: { stream?: { destroy(): void } } } | undefined)?.connection?.stream?.destroy();
    this.scheduleReconnect();
  }

  private async connect(): Promise<void> {
    if (this.connecting || this.connection || this.stopped) return;
    this.connecting = true;
    let connection: ChannelModel | undefined;
    try {
      // A cluster's nodes in turn, each attempt bounded (a blackholed path never answers), starting
      // after the node we were last on: the node lost is likely the one down.
      const connected = await connectRabbit(this.options.urls, {
        first: this.nextNode,
        timeoutMs: this.options.connectTimeoutMs,
        connectionName: `socketbridge-worker events ${this.options.instanceId}`,
      });
      connection = connected.connection;
      this.nextNode = (connected.index + 1) % this.options.urls.length;
      // Bounded too: a node that stalls right after the handshake would otherwise hold `connecting`
      // (and every event) until the AMQP heartbeat noticed.
      const opened = connection;
      const channel = await withTimeout(
        (async () => {
          const confirm = await opened.createConfirmChannel();
          await confirm.assertExchange(this.options.exchange, 'topic', { durable: true });
          return confirm;
        })(),
        this.options.connectTimeoutMs,
        'the events channel and exchange',
      );
      const generation = ++this.generation;
      connection.on('error', (error: Error) => this.options.logger.warn({ err: error.message }, 'lifecycle events: RabbitMQ connection error'));
      connection.on('close', () => {
        if (generation === this.generation) this.options.logger.warn('lifecycle events: RabbitMQ connection closed');
        this.lost(generation);
      });
      channel.on('error', () => undefined); // 'close' follows
      channel.on('close', () => this.lost(generation)); // e.g. the exchange was deleted: start over on a new connection
      this.connection = connection;
      this.channel = channel;
      this.attempt = 0;
      this.options.logger.info(
        { exchange: this.options.exchange, queued: this.queue.length, node: redactUrl(this.options.urls[connected.index]!) },
        'lifecycle events: connected to RabbitMQ',
      );
      this.pump();
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message, attempt: this.attempt }, 'lifecycle events: could not connect to RabbitMQ');
      connection?.close().catch(() => undefined);
      this.scheduleReconnect();
    } finally {
      this.connecting = false;
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const base = Math.min(100 * 2 ** this.attempt, this.options.reconnectMaxMs);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, Math.round(base * (0.8 + Math.random() * 0.4)));
    this.reconnectTimer.unref();
  }
}
