import { DEFAULT_HISTORY, type Bridge, type BridgeQueue, type ChannelPolicy } from '@socketbridge/common';
import type { SocketBridgeSpec } from './resource.js';

/** What a SocketBridge's spec becomes in the registry, with every default applied. */
export function toBridge(name: string, spec: SocketBridgeSpec): Bridge {
  return {
    name,
    queues: (spec.queues ?? []).map(
      (q): BridgeQueue => ({
        name: q.name,
        durable: q.durable ?? true,
        singleActiveConsumer: q.singleActiveConsumer ?? false,
        type: q.type ?? 'classic',
        ...(q.quorum ? { quorum: { ...q.quorum } } : {}),
        ...(q.stream ? { stream: { ...q.stream } } : {}),
        bindings: (q.bindings ?? []).map((b) => ({ exchange: b.exchange, type: b.type, routingKey: b.routingKey ?? '' })),
        route: { channel: q.route?.channel ?? '' },
      }),
    ),
    channels: (spec.channels ?? []).map(
      (c): ChannelPolicy => ({
        pattern: c.pattern,
        access: c.access,
        ...(c.history
          ? { history: { size: c.history.size ?? DEFAULT_HISTORY.size, ttlSeconds: c.history.ttlSeconds ?? DEFAULT_HISTORY.ttlSeconds } }
          : {}),
        ...(c.presence ? { presence: true } : {}),
      }),
    ),
  };
}

/** The bridge name in the registry: `<name>` in local mode, `<namespace>-<name>` in Kubernetes. */
export function registryName(name: string, namespace?: string): string {
  return namespace ? `${namespace}-${name}` : name;
}

/** The publisher's REST route addresses bridges by DNS label; keep the registry's names to that. */
export const BRIDGE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function bridgeNameProblem(name: string): string | undefined {
  if (name.length > 63) return `bridge name ${name} is ${name.length} characters; the registry takes at most 63 (in Kubernetes: <namespace>-<name>)`;
  if (!BRIDGE_NAME.test(name)) return `bridge name ${name} is not a DNS label (a-z, 0-9 and -, starting and ending with a letter or digit)`;
  return undefined;
}
