import SkeletonRendezvousHasher from 'skeleton-rendezvous';
import sccBrokerClient, { type AttachOptions, type ClientPool, type ClusterBrokerClient } from 'scc-broker-client';
import type { Logger } from 'pino';
import type { AGClientSocket } from 'socketcluster-client';
import { linkErrorFields } from './protocol.js';
import { waitUntil } from './wait.js';

export interface RemapOptions {
  /** After our own new subscriptions are confirmed, how long until we publish on the new mapping. */
  switchDelayMs: number;
  /** After we switched, how long we keep listening on the old mapping. */
  graceMs: number;
  /** Upper bound on waiting for the new brokers to confirm our subscriptions. */
  confirmTimeoutMs: number;
  logger: Logger;
  onRemap?: (brokerURIs: string[]) => void;
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

/**
 * Makes scc-broker-client's broker changes lossless for the channels this process already serves.
 *
 * Upstream switches subscriptions and publishes to the new broker mapping at the instant the state
 * server's snapshot arrives, and every member receives it at a slightly different instant: a
 * message published by a member that switched early goes to a broker the late subscribers have
 * not reached yet, and one published by a late member goes to a broker the early ones already
 * left. Here the change happens in three steps instead:
 *   1. subscribe on the new mapping at once, but keep the old subscriptions (no unsubscribes, no
 *      closed pools): a subscriber hears both brokers, and as each publish goes to exactly one
 *      broker it is received once;
 *   2. once our new subscriptions are confirmed and `switchDelayMs` has passed (covering the
 *      other members' lag), publish on the new mapping;
 *   3. `graceMs` later, drop the old subscriptions and close pools of brokers that left.
 * A broker that left because it died gets no publishes in between: its pool is not open, so
 * publishes fall through to the new mapping at once.
 */
function installLosslessRemap(client: ClusterBrokerClient, options: RemapOptions) {
  const setBrokers = client.setBrokers.bind(client);
  const invokePublish = client.invokePublish.bind(client);
  const publishMapper = new SkeletonRendezvousHasher();
  let publishing: 'follow' | 'previous' = 'follow';
  const retained = new Map<string, ClientPool>();
  let deferred: Array<[ClientPool, string]> = [];
  let generation = 0;

  const isOpen = (pool: ClientPool) => pool.clients.some((socket) => socket.state === socket.OPEN);

  client.setBrokers = (uris: string[]) => {
    const previous = client.sccBrokerURIList.slice();
    if (previous.length === 0 || sameSet(previous, uris)) {
      setBrokers(uris);
      if (previous.length === 0) options.onRemap?.(uris);
      return;
    }
    const pools = client.sccBrokerClientPools;
    for (const uri of uris) {
      const back = retained.get(uri);
      if (back && !pools[uri]) pools[uri] = back;
      retained.delete(uri);
    }
    for (const uri of Object.keys(pools)) {
      if (uris.includes(uri)) continue;
      retained.set(uri, pools[uri]!);
      delete pools[uri];
    }
    // setBrokers unsubscribes kept pools from channels that moved away; hold those back (step 3).
    const kept = Object.values(pools);
    for (const pool of kept) {
      pool.unsubscribe = (channel: string) => void deferred.push([pool, channel]);
      pool.closeChannel = () => undefined;
    }
    try {
      setBrokers(uris);
    } finally {
      for (const pool of kept) {
        delete (pool as Partial<ClientPool>).unsubscribe;
        delete (pool as Partial<ClientPool>).closeChannel;
      }
    }
    if (publishing === 'follow') publishMapper.setSites(previous);
    publishing = 'previous';
    const gen = ++generation;
    options.onRemap?.(uris);
    options.logger.info({ from: previous, to: uris }, 'broker set changed: subscribed on the new mapping, still publishing on the old');
    void handOver(gen);
  };

  async function handOver(gen: number): Promise<void> {
    const confirmed = await waitUntil(() => {
      const pools = client.sccBrokerClientPools;
      return client.broker.subscriptions().every((channel) => {
        const pool = pools[client.mapChannelNameToBrokerURI(channel)];
        return !pool || !isOpen(pool) || pool.isSubscribed(channel, false);
      });
    }, options.confirmTimeoutMs, 20);
    await new Promise((resolve) => setTimeout(resolve, options.switchDelayMs));
    if (gen !== generation) return; // a newer change took over the hand-over
    publishing = 'follow';
    options.logger.info({ confirmed }, 'publishing on the new broker mapping');
    await new Promise((resolve) => setTimeout(resolve, options.graceMs));
    if (gen !== generation) return;
    const pools = client.sccBrokerClientPools;
    for (const [pool, channel] of deferred) {
      if (pools[client.mapChannelNameToBrokerURI(channel)] !== pool) {
        pool.unsubscribe(channel);
        pool.closeChannel(channel);
      }
    }
    deferred = [];
    for (const pool of retained.values()) pool.destroy();
    retained.clear();
    options.logger.info('broker hand-over finished: old subscriptions dropped');
  }

  /** The pool a publish on `channel` goes to right now, or undefined when no broker is known. */
  function publishPool(channel: string): ClientPool | undefined {
    if (publishing === 'previous') {
      const uri = publishMapper.findSite(channel);
      const pool = client.sccBrokerClientPools[uri] ?? retained.get(uri);
      if (pool && isOpen(pool)) return pool;
    }
    return client.sccBrokerClientPools[client.mapChannelNameToBrokerURI(channel)];
  }

  client.invokePublish = (channel: string, data: unknown) => {
    const pool = publishing === 'previous' ? publishPool(channel) : undefined;
    if (pool) void pool.invokePublish(channel, data);
    else invokePublish(channel, data);
  };

  /**
   * Subscribes `channel` at the cluster level now, on the shard it maps to and, mid-change, on the
   * shard publishes still go to, and resolves once the shards confirmed (false if not within
   * `timeoutMs`). Called before a client's subscription is acknowledged, so an acknowledged
   * subscription receives every message published after it.
   */
  async function ensureSubscribed(channel: string, timeoutMs: number): Promise<boolean> {
    const pools = new Set<ClientPool>();
    const target = client.sccBrokerClientPools[client.mapChannelNameToBrokerURI(channel)];
    if (target) pools.add(target);
    const during = publishing === 'previous' ? publishPool(channel) : undefined;
    if (during) pools.add(during);
    for (const pool of pools) {
      if (pool.isSubscribed(channel, true)) continue;
      // The same subscribe-and-watch scc-broker-client uses, so its later subscribe is a no-op.
      (client as unknown as { _subscribeClientPoolToChannelAndWatch(pool: ClientPool, channel: string): void })._subscribeClientPoolToChannelAndWatch(pool, channel);
      // A shard other than the channel's current one is only for the hand-over: drop it with the rest.
      if (pool !== target) deferred.push([pool, channel]);
    }
    return waitUntil(() => [...pools].every((pool) => !isOpen(pool) || pool.isSubscribed(channel, false)), timeoutMs, 5);
  }

  return { publishPool, ensureSubscribed };
}

/** What scc-broker-client needs of the local broker: socketcluster-server's brokerEngine, or a bare AGSimpleBroker. */
export type LocalBroker = Parameters<typeof sccBrokerClient.attach>[0];

export interface ClusterLinkOptions extends AttachOptions, Omit<RemapOptions, 'onRemap'> {}

export interface ClusterLink {
  readonly instanceId: string;
  brokerURIs(): string[];
  workerURIs(): string[];
  /** See installLosslessRemap's ensureSubscribed; pair with releaseIfUnused when the local subscription did not happen. */
  ensureSubscribed(channel: string, timeoutMs: number): Promise<boolean>;
  /** Drops a cluster-level subscription no local socket took up. */
  releaseIfUnused(channel: string): void;
  /**
   * Listens on a reserved channel for the whole life of the process (the control channel): a
   * placeholder subscriber in the local broker keeps the channel in the subscriptions
   * scc-broker-client carries over every broker change, and each message another member
   * published there goes to `onMessage` (its errors are logged, never thrown).
   */
  listen(channel: string, onMessage: (data: unknown) => void): void;
  /** Whether the shard `channel` maps to has confirmed our subscription (false while no broker is known). */
  isSubscribed(channel: string): boolean;
  /**
   * Whether this member may take traffic (see linkReadiness): once joined, it stays ready, and a
   * not-ready answer says what it is waiting for.
   */
  readiness(): { ready: true } | { ready: false; reason: string };
  /**
   * Publishes messages (in order) into the cluster and resolves once the channel's broker shard
   * acknowledged them: the point after which they are the cluster's to deliver. Rejects when no
   * shard is reachable.
   */
  publish(channel: string, messages: unknown[]): Promise<void>;
  readonly client: ClusterBrokerClient;
}

/**
 * Publishes made in one turn of the event loop leave for each broker as one frame, through
 * socketcluster-client's own batching (the broker handles a batch's packets in order): a busy
 * publisher makes one write per broker per turn instead of one per message, and waits for nothing.
 */
function tickBatcher(): (socket: AGClientSocket) => void {
  const batching = new Set<AGClientSocket>();
  const flush = () => {
    for (const socket of batching) {
      try {
        socket.flushBatch();
      } catch {
        // The connection went in between: its pending invokes fail with it, and callers retry.
      }
    }
    batching.clear();
  };
  return (socket) => {
    if (batching.has(socket) || socket.state !== socket.OPEN) return;
    socket.startBatch();
    if (batching.size === 0) process.nextTick(flush);
    batching.add(socket);
  };
}

/**
 * A member is ready the first time all of these hold:
 *   - it has a broker mapping: the last broker snapshot the state server gave it (its join reply or
 *     a push; the state server answers a join with the snapshot it last pushed to the others while
 *     a newer one is pending, so a joining member maps as they do), naming at least one broker;
 *   - its connection to every broker of that mapping is open;
 *   - every channel it listens on (the control and presence channels, a publisher's reply
 *     channels, clients' channels) is confirmed by the broker that mapping assigns it to.
 * From then on a client's subscription is confirmed by its shard before it is acknowledged, and a
 * publish goes to a broker every member listens on. Afterwards it stays ready: later broker changes
 * are the lossless hand-over's (installLosslessRemap), and a member that has a mapping keeps it
 * while the state server is away; turning every member unready at once on a broker change would
 * take them all out of their Service together.
 */
function linkReadiness(client: ClusterBrokerClient, brokerURIs: () => string[]): () => { ready: true } | { ready: false; reason: string } {
  let ready = false;
  return () => {
    if (ready) return { ready: true };
    const uris = brokerURIs();
    if (uris.length === 0) return { ready: false, reason: 'no broker mapping yet' };
    const pools = client.sccBrokerClientPools;
    const connected = uris.filter((uri) => pools[uri]?.clients.every((socket) => socket.state === socket.OPEN)).length;
    if (connected < uris.length) return { ready: false, reason: `joining brokers: ${connected} of ${uris.length} connected` };
    const channels = client.broker.subscriptions();
    const confirmed = channels.filter((channel) => pools[client.mapChannelNameToBrokerURI(channel)]?.isSubscribed(channel, false)).length;
    if (confirmed < channels.length) return { ready: false, reason: `subscribing on brokers: ${confirmed} of ${channels.length} channels confirmed` };
    ready = true;
    return { ready: true };
  };
}

/**
 * Joins the SCC cluster as scc-broker-client does (as a worker, so the state server pushes broker
 * changes to us), with the lossless broker hand-over below installed.
 */
export function joinCluster(broker: LocalBroker, options: ClusterLinkOptions, onRemap?: (brokerURIs: string[]) => void): ClusterLink {
  const client = sccBrokerClient.attach(broker, options);
  let brokerURIs: string[] = [];
  let workerURIs: string[] = [];
  const batch = tickBatcher();
  const remap = installLosslessRemap(client, {
    ...options,
    onRemap: (uris) => {
      brokerURIs = [...uris].sort();
      onRemap?.(brokerURIs);
    },
  });
  void (async () => {
    for await (const { workerURIs: uris } of client.listener('updateWorkers')) workerURIs = [...uris].sort();
  })();
  const listened = new Map<string, (data: unknown) => void>();
  void (async () => {
    for await (const { channel, packet } of client.listener('message')) {
      const onMessage = listened.get(channel);
      if (!onMessage) continue;
      const { sender, messages } = (packet ?? {}) as { sender?: unknown; messages?: unknown };
      if (sender === options.instanceId || !Array.isArray(messages)) continue;
      for (const data of messages) {
        try {
          onMessage(data);
        } catch (error) {
          options.logger.error({ err: error, channel }, 'a listener failed on a cluster message');
        }
      }
    }
  })();
  void (async () => {
    for await (const { error } of client.listener('error')) {
      options.logger.warn(linkErrorFields(error), 'cluster client error');
    }
  })();
  return {
    instanceId: options.instanceId,
    client,
    brokerURIs: () => brokerURIs,
    workerURIs: () => workerURIs,
    ensureSubscribed: remap.ensureSubscribed,
    readiness: linkReadiness(client, () => brokerURIs),
    listen(channel, onMessage) {
      listened.set(channel, onMessage);
      // Never OPEN: the delivery path (fanout.ts) skips it, so nothing is written anywhere.
      const placeholder = { id: `listener:${channel}`, ws: { readyState: 3, OPEN: 1 } };
      void (broker as unknown as { subscribeSocket(socket: unknown, channel: string): Promise<void> }).subscribeSocket(placeholder, channel);
    },
    isSubscribed(channel) {
      const pool = client.sccBrokerClientPools[client.mapChannelNameToBrokerURI(channel)];
      return !!pool && pool.isSubscribed(channel, false);
    },
    releaseIfUnused(channel) {
      const local = broker as unknown as { isSubscribed?(channel: string): boolean };
      if (local.isSubscribed && !local.isSubscribed(channel)) client.unsubscribe(channel);
    },
    async publish(channel, messages) {
      const pool = remap.publishPool(channel);
      if (!pool) throw new Error(`no broker shard known for channel ${channel}: the cluster has no brokers yet`);
      const socket = pool.selectClient(channel);
      batch(socket);
      // The packet shape scc-broker-client uses, so every worker (ours or upstream) delivers each message.
      await socket.invokePublish(channel, { sender: options.instanceId, messages });
    },
  };
}
