import type { ChannelPolicy } from './channels.js';

/** A queue the publisher consumes, how it is declared and bound, and where its messages go. */
export interface BridgeQueue {
  name: string;
  durable: boolean;
  /** Declares `x-single-active-consumer`, so one replica at a time consumes it and order holds. */
  singleActiveConsumer: boolean;
  bindings: Array<{ exchange: string; type: 'direct' | 'topic' | 'fanout' | 'headers'; routingKey: string }>;
  /** Template naming the channel, over `routingKey`, `headers.<name>` and `body.<field>`. */
  route: { channel: string };
}

/** A bridge: queues in, channels out. The operator writes these to the registry; publishers run them. */
export interface Bridge {
  name: string;
  queues: BridgeQueue[];
  channels: ChannelPolicy[];
}

/** Redis keys shared by the publisher, the workers and the operator. */
export const registryKeys = {
  client: (id: string) => `socketbridge:client:${id}`,
  clientIds: 'socketbridge:clients',
  emails: 'socketbridge:client-emails',
  bridges: 'socketbridge:bridges',
  /** Pub/sub channel announcing that bridges or policies changed; readers reload on it. */
  changes: 'socketbridge:registry-changes',
  history: (channel: string) => `socketbridge:history:${channel}`,
};
