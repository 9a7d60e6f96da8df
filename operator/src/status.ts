import type { Condition, QueueStatus, SocketBridgeStatus } from './resource.js';

export interface Outcome {
  ready: boolean;
  reason: string;
  message: string;
  /** The generation this outcome is about. */
  generation: number;
  /** On success, the queues as RabbitMQ reports them. */
  queues?: QueueStatus[];
}

/**
 * The status after a reconcile. `observedGeneration` moves only on success; the Ready condition
 * carries the generation it judged either way, and keeps its `lastTransitionTime` unless its
 * status flips.
 */
export function nextStatus(previous: SocketBridgeStatus | undefined, outcome: Outcome, now = new Date()): SocketBridgeStatus {
  const before = previous?.conditions?.find((c) => c.type === 'Ready');
  const status: Condition['status'] = outcome.ready ? 'True' : 'False';
  const ready: Condition = {
    type: 'Ready',
    status,
    reason: outcome.reason,
    // The CRD caps messages (32768); a longer one would make the API server refuse the whole patch.
    message: outcome.message.length > 4096 ? `${outcome.message.slice(0, 4093)}...` : outcome.message,
    lastTransitionTime: before && before.status === status ? before.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    observedGeneration: outcome.generation,
  };
  const queues = outcome.queues ?? previous?.queues;
  return {
    ...(outcome.ready ? { observedGeneration: outcome.generation } : previous?.observedGeneration !== undefined ? { observedGeneration: previous.observedGeneration } : {}),
    ...(queues ? { queues, queuesReady: `${queues.filter((q) => q.ready).length}/${queues.length}` } : {}),
    conditions: [...(previous?.conditions ?? []).filter((c) => c.type !== 'Ready'), ready],
  };
}

/** Whether two statuses say the same (ignoring nothing: a changed message count is a change). */
export function sameStatus(a: SocketBridgeStatus | undefined, b: SocketBridgeStatus): boolean {
  return JSON.stringify(canonical(a ?? {})) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => [k, canonical(v)]));
  }
  return value;
}
