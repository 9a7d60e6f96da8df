import SkeletonRendezvousHasher from 'skeleton-rendezvous';
import type { ClientPool, ClusterBrokerClient } from 'scc-broker-client';
import { waitUntil, type Logger } from '@socketbridge/common';

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
export function installLosslessRemap(client: ClusterBrokerClient, options: RemapOptions): { inTransition: () => boolean } {
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

  client.invokePublish = (channel: string, data: unknown) => {
    if (publishing === 'previous') {
      const uri = publishMapper.findSite(channel);
      const pool = client.sccBrokerClientPools[uri] ?? retained.get(uri);
      if (pool && isOpen(pool)) {
        void pool.invokePublish(channel, data);
        return;
      }
    }
    invokePublish(channel, data);
  };

  return { inTransition: () => publishing === 'previous' || retained.size > 0 || deferred.length > 0 };
}
