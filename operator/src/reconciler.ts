import type { Channel, ChannelModel } from 'amqplib';
import type { RedisClient } from '@socketbridge/common';
import { bridgeProblems, connectRabbit, parseRabbitUrls, queueArguments, redactUrl, registryKeys, type Bridge, type Logger } from '@socketbridge/common';
import { bridgeNameProblem, toBridge } from './bridge.js';
import type { DeletionPolicy, QueueStatus, SocketBridgeSpec } from './resource.js';

/** Which resource wrote each registry entry, so two resources cannot claim one bridge name. */
export const OWNERS_KEY = registryKeys.owners;

/** Why a reconcile failed, as the Ready condition's reason. */
export type FailureReason =
  | 'InvalidSpec'
  | 'NameConflict'
  | 'QueueConflict'
  | 'ExchangeClash'
  | 'QueueClash'
  | 'AccessRefused'
  | 'RabbitMQUnavailable'
  | 'RabbitMQError'
  | 'RedisUnavailable'
  | 'SecretNotFound'
  | 'Timeout'
  | 'DeleteFailed'
  | 'ReconcileFailed';

/** A failure with a reason a person can act on. `permanent`: only an edit of the spec can fix it. */
export class ReconcileError extends Error {
  override name = 'ReconcileError';
  constructor(
    readonly reason: FailureReason,
    message: string,
    readonly permanent = false,
  ) {
    super(message);
  }
}

export interface ApplyRequest {
  /** The bridge's name in the registry. */
  name: string;
  /** Who asks, such as `namespace/name` or `local`: a registry name belongs to one owner. */
  owner: string;
  spec: SocketBridgeSpec;
  rabbitUrl: string;
}

export interface ApplyResult {
  bridge: Bridge;
  queues: QueueStatus[];
  /** What this pass changed in RabbitMQ (empty when everything already matched). */
  changes: string[];
}

export interface RemoveRequest {
  name: string;
  owner: string;
  /** The queues the resource declares (those in the registry entry are removed too). */
  spec?: SocketBridgeSpec;
  deletionPolicy: DeletionPolicy;
  /** Needed only when queues are to be deleted. */
  rabbitUrl?: string;
}

export interface ReconcilerOptions {
  /** Longest one apply or remove may talk to RabbitMQ (connect included). */
  timeoutMs: number;
  /** Shown in RabbitMQ's connection list. */
  connectionName?: string;
}

interface AmqpError extends Error {
  code?: number | string;
}

/**
 * Declares a bridge's RabbitMQ topology and writes it to the Redis registry the publishers and
 * workers watch. Knows nothing of Kubernetes: the controller and local mode (`npm run bridge`)
 * share it. Everything that can be checked is checked before anything is touched: the spec, the
 * registry (name and queue ownership), and every existing exchange and queue it would declare.
 */
export class Reconciler {
  constructor(
    private readonly redis: RedisClient,
    private readonly logger: Logger,
    private readonly options: ReconcilerOptions,
  ) {}

  async apply(request: ApplyRequest): Promise<ApplyResult> {
    const bridge = toBridge(request.name, request.spec);
    const problems = [bridgeNameProblem(request.name), ...bridgeProblems(bridge)].filter((p): p is string => p !== undefined);
    if (problems.length) throw new ReconcileError('InvalidSpec', problems.join('; '), true);

    const { previous, others } = await this.readRegistry(request.name, request.owner);
    for (const queue of bridge.queues) {
      const claimant = others.find((b) => b.queues.some((q) => q.name === queue.name));
      if (claimant) throw new ReconcileError('QueueConflict', `queue ${queue.name} is already routed by bridge ${claimant.name}; a queue belongs to one bridge`);
    }

    return this.withConnection(request.rabbitUrl, async (connection) => {
      const existing = await this.preflight(connection, bridge);
      const changes = await this.declare(connection, bridge, previous, request.spec.deletionPolicy ?? 'retain', existing);
      await this.writeRegistry(bridge, request.owner);
      const queues = await this.queueStatus(connection, bridge);
      return { bridge, queues, changes };
    });
  }

  /** Removes the registry entry (and, with deletionPolicy delete, the queues). `owner` is set when the entry belongs to someone else: nothing was touched. */
  async remove(request: RemoveRequest): Promise<{ deletedQueues: string[]; owner?: string }> {
    const { previous, owner, others } = await this.readEntry(request.name);
    if (owner !== undefined && owner !== request.owner) {
      // Someone else's entry under this name: ours was never written, so there is nothing to remove.
      this.logger.info({ bridge: request.name, owner }, 'registry entry belongs to another resource: left alone');
      return { deletedQueues: [], owner };
    }
    // What we applied, and what the spec names unless another bridge routes it (a spec that failed
    // with QueueConflict must not delete the other bridge's queue).
    const claimed = new Set(others.flatMap((b) => b.queues.map((q) => q.name)));
    const queues = new Set([...(previous?.queues ?? []).map((q) => q.name), ...(request.spec?.queues ?? []).map((q) => q.name).filter((q) => !claimed.has(q))]);
    // The route goes first, so publishers stop consuming before a queue disappears under them.
    await this.guardRedis(() => this.redis.multi().hdel(registryKeys.bridges, request.name).hdel(OWNERS_KEY, request.name).publish(registryKeys.changes, request.name).exec());
    if (request.deletionPolicy !== 'delete' || queues.size === 0) return { deletedQueues: [] };
    if (!request.rabbitUrl) throw new ReconcileError('DeleteFailed', 'deletionPolicy is delete but no RabbitMQ URL is known');
    return this.withConnection(request.rabbitUrl, async (connection) => {
      const channel = await this.openChannel(connection);
      try {
        for (const queue of queues) await channel.deleteQueue(queue);
      } finally {
        await channel.close().catch(() => undefined);
      }
      return { deletedQueues: [...queues] };
    });
  }

  // --- registry ------------------------------------------------------------------------------

  private async guardRedis<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      // MULTI answers per-command errors inside the result.
      if (Array.isArray(result)) {
        const failed = (result as Array<[Error | null, unknown]>).find((entry) => Array.isArray(entry) && entry[0]);
        if (failed) throw failed[0];
      }
      return result;
    } catch (error) {
      if (error instanceof ReconcileError) throw error;
      throw new ReconcileError('RedisUnavailable', `the registry (Redis) is unavailable: ${(error as Error).message}`);
    }
  }

  private async readEntry(name: string): Promise<{ previous: Bridge | undefined; owner: string | undefined; others: Bridge[] }> {
    const [all, owner] = await this.guardRedis(() => Promise.all([this.redis.hgetall(registryKeys.bridges), this.redis.hget(OWNERS_KEY, name)]));
    const others = Object.entries(all)
      .filter(([key]) => key !== name)
      .map(([, text]) => parseBridge(text))
      .filter((b): b is Bridge => b !== undefined);
    return { previous: parseBridge(all[name]), owner: owner ?? undefined, others };
  }

  private async readRegistry(name: string, owner: string): Promise<{ previous: Bridge | undefined; others: Bridge[] }> {
    const entry = await this.readEntry(name);
    if (entry.owner !== undefined && entry.owner !== owner) throw new ReconcileError('NameConflict', `bridge name ${name} is already used by ${entry.owner}`);
    return entry;
  }

  private async writeRegistry(bridge: Bridge, owner: string): Promise<void> {
    await this.guardRedis(() =>
      this.redis.multi().hset(registryKeys.bridges, bridge.name, JSON.stringify(bridge)).hset(OWNERS_KEY, bridge.name, owner).publish(registryKeys.changes, bridge.name).exec(),
    );
  }

  // --- RabbitMQ ------------------------------------------------------------------------------

  private async withConnection<T>(url: string, fn: (connection: ChannelModel) => Promise<T>): Promise<T> {
    const timeoutMs = this.options.timeoutMs;
    let connection: ChannelModel;
    try {
      // Several comma-separated URLs are the nodes of one cluster: the first that accepts serves,
      // and the connect as a whole stays within the one timeout.
      const urls = parseRabbitUrls(url);
      ({ connection } = await connectRabbit(urls, { timeoutMs: Math.ceil(timeoutMs / urls.length), connectionName: this.options.connectionName ?? 'socketbridge-operator' }));
    } catch (error) {
      throw new ReconcileError('RabbitMQUnavailable', `RabbitMQ at ${redactUrl(url)} is unavailable: ${describe(error)}`);
    }
    let timedOut = false;
    connection.on('error', (error: Error) => this.logger.debug({ err: error.message }, 'rabbitmq connection error'));
    const timer = setTimeout(() => {
      timedOut = true;
      void connection.close().catch(() => undefined);
    }, timeoutMs);
    try {
      return await fn(connection);
    } catch (error) {
      if (error instanceof ReconcileError) throw error;
      if (timedOut) throw new ReconcileError('Timeout', `RabbitMQ did not finish within ${timeoutMs} ms`);
      const code = (error as AmqpError).code;
      if (typeof code === 'number') throw new ReconcileError(code === 403 ? 'AccessRefused' : 'RabbitMQError', `RabbitMQ refused: ${amqpMessage(error)}`);
      throw new ReconcileError('RabbitMQUnavailable', `RabbitMQ at ${redactUrl(url)} failed: ${describe(error)}`);
    } finally {
      clearTimeout(timer);
      await connection.close().catch(() => undefined);
    }
  }

  private async openChannel(connection: ChannelModel): Promise<Channel> {
    const channel = await connection.createChannel();
    // A channel error (404, 406) closes only the channel; without a listener it would crash the process.
    channel.on('error', () => undefined);
    return channel;
  }

  /** Runs one operation on a throwaway channel: a 404 or 406 closes that channel and nothing else. */
  private async probe<T>(connection: ChannelModel, fn: (channel: Channel) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: AmqpError }> {
    const channel = await this.openChannel(connection);
    try {
      return { ok: true, value: await fn(channel) };
    } catch (error) {
      const code = (error as AmqpError).code;
      if (typeof code !== 'number') throw error; // the connection, not the operation
      return { ok: false, error: error as AmqpError };
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /**
   * Finds every clash before declaring anything: an exchange that exists with another type (or
   * durability), a queue that exists with other arguments. Declaring what already exists with the
   * same properties changes nothing, so that is how existing ones are compared; missing ones are
   * only looked at (passively).
   */
  private async preflight(connection: ChannelModel, bridge: Bridge): Promise<{ exchanges: Set<string>; queues: Set<string> }> {
    const problems: Array<{ reason: FailureReason; text: string }> = [];
    const existing = { exchanges: new Set<string>(), queues: new Set<string>() };
    for (const [exchange, type] of exchangesOf(bridge)) {
      const found = await this.probe(connection, (ch) => ch.checkExchange(exchange));
      if (!found.ok) {
        if (found.error.code !== 404) problems.push({ reason: reasonFor(found.error), text: `exchange ${exchange}: ${amqpMessage(found.error)}` });
        continue;
      }
      existing.exchanges.add(exchange);
      const same = await this.probe(connection, (ch) => ch.assertExchange(exchange, type, { durable: true }));
      if (!same.ok) {
        const current = /current is '([^']*)'/.exec(amqpMessage(same.error))?.[1];
        const what = /inequivalent arg '([^']*)'/.exec(amqpMessage(same.error))?.[1];
        const text =
          what === 'type'
            ? `exchange ${exchange} already exists with type ${current}; the spec binds it as ${type}`
            : `exchange ${exchange} already exists with other properties (${amqpMessage(same.error)}); the operator declares exchanges durable`;
        problems.push({ reason: same.error.code === 406 ? 'ExchangeClash' : reasonFor(same.error), text });
      }
    }
    for (const queue of bridge.queues) {
      const found = await this.probe(connection, (ch) => ch.checkQueue(queue.name));
      if (!found.ok) {
        if (found.error.code !== 404) problems.push({ reason: reasonFor(found.error), text: `queue ${queue.name}: ${amqpMessage(found.error)}` });
        continue;
      }
      existing.queues.add(queue.name);
      const same = await this.probe(connection, (ch) => ch.assertQueue(queue.name, queueOptions(queue)));
      if (!same.ok) {
        problems.push({
          reason: same.error.code === 406 ? 'QueueClash' : reasonFor(same.error),
          text: `queue ${queue.name} already exists with other arguments (${amqpMessage(same.error)}); RabbitMQ cannot change them: delete the queue or use another name`,
        });
      }
    }
    if (problems.length) throw new ReconcileError(problems[0]!.reason, problems.map((p) => p.text).join('; '));
    return existing;
  }

  private async declare(
    connection: ChannelModel,
    bridge: Bridge,
    previous: Bridge | undefined,
    deletionPolicy: DeletionPolicy,
    existing: { exchanges: Set<string>; queues: Set<string> },
  ): Promise<string[]> {
    const changes: string[] = [];
    const channel = await this.openChannel(connection);
    try {
      for (const [exchange, type] of exchangesOf(bridge)) {
        await channel.assertExchange(exchange, type, { durable: true });
        if (!existing.exchanges.has(exchange)) changes.push(`declared ${type} exchange ${exchange}`);
      }
      for (const queue of bridge.queues) {
        await channel.assertQueue(queue.name, queueOptions(queue));
        if (!existing.queues.has(queue.name)) changes.push(`declared queue ${queue.name}`);
        for (const binding of queue.bindings) await channel.bindQueue(queue.name, binding.exchange, binding.routingKey);
        const before = previous?.queues.find((q) => q.name === queue.name);
        for (const binding of before?.bindings ?? []) {
          if (queue.bindings.some((b) => b.exchange === binding.exchange && b.routingKey === binding.routingKey)) continue;
          await channel.unbindQueue(queue.name, binding.exchange, binding.routingKey);
          changes.push(`unbound queue ${queue.name} from ${binding.exchange} (${JSON.stringify(binding.routingKey)})`);
        }
      }
    } finally {
      await channel.close().catch(() => undefined);
    }
    // Queues the spec no longer names: with deletionPolicy delete they go; retained ones stay as they are.
    for (const gone of previous?.queues ?? []) {
      if (bridge.queues.some((q) => q.name === gone.name)) continue;
      if (deletionPolicy === 'delete') {
        const deleted = await this.probe(connection, (ch) => ch.deleteQueue(gone.name));
        if (deleted.ok) changes.push(`deleted queue ${gone.name} (no longer in the spec)`);
      } else {
        changes.push(`retained queue ${gone.name} (no longer in the spec)`);
      }
    }
    return changes;
  }

  private async queueStatus(connection: ChannelModel, bridge: Bridge): Promise<QueueStatus[]> {
    const result: QueueStatus[] = [];
    for (const queue of bridge.queues) {
      const found = await this.probe(connection, (ch) => ch.checkQueue(queue.name));
      result.push(found.ok ? { name: queue.name, ready: true, messages: found.value.messageCount, consumers: found.value.consumerCount } : { name: queue.name, ready: false });
    }
    return result;
  }
}

function queueOptions(queue: Bridge['queues'][number]) {
  const args = queueArguments(queue);
  return { durable: queue.durable, ...(Object.keys(args).length ? { arguments: args } : {}) };
}

function exchangesOf(bridge: Bridge): Map<string, string> {
  const exchanges = new Map<string, string>();
  for (const queue of bridge.queues) for (const binding of queue.bindings) exchanges.set(binding.exchange, binding.type);
  return exchanges;
}

function parseBridge(text: string | null | undefined): Bridge | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Bridge;
  } catch {
    return undefined;
  }
}

function reasonFor(error: AmqpError): FailureReason {
  return error.code === 403 ? 'AccessRefused' : 'RabbitMQError';
}

/** RabbitMQ's own sentence, without amqplib's "Operation failed: …; 406 (…) with message" wrapper. */
function amqpMessage(error: unknown): string {
  const text = (error as Error).message ?? String(error);
  return /with message "(.*)"$/.exec(text)?.[1] ?? text;
}

function describe(error: unknown): string {
  const e = error as AmqpError & { errors?: Error[] };
  // Node's happy-eyeballs connect reports an AggregateError with an empty message.
  if (!e.message && e.errors?.length) return e.errors.map((inner) => inner.message).join('; ');
  return e.message || String(e.code ?? error);
}

