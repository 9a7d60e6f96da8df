/**
 * The SocketBridge resource (socketbridge.io/v1alpha1) as TypeScript sees it. The spec's types are
 * `Static` of the bridge schema in services/common/src/bridge-schema.ts, which the CRD's `spec` is
 * generated from (`npm run generate:crd`); the status types are written here, and
 * operator/test/crd.test.ts keeps all of them in step with the CRD (fields, required/optional).
 *
 * Fields with a default in the CRD are optional here: that is how people write them, and a
 * spec that reaches the operator without defaults applied (an older CRD, local mode before
 * validation) must still mean the same thing. `toBridge` applies the defaults.
 */

import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { SocketBridgeSpec } from '@socketbridge/common';

export const GROUP = 'socketbridge.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'SocketBridge';
export const PLURAL = 'socketbridges';
export const FINALIZER = 'socketbridge.io/finalizer';

/** The spec's types come from the one bridge schema the CRD's `spec` is generated from. */
export type {
  BindingSpec,
  ChannelSpec,
  DeletionPolicy,
  ExchangeType,
  HistorySpec,
  QueueSpec,
  QuorumSpec,
  RabbitMQSpec,
  RouteSpec,
  SecretRef,
  SocketBridgeSpec,
  StreamSpec,
} from '@socketbridge/common';
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface QueueStatus {
  name: string;
  ready: boolean;
  messages?: number;
  consumers?: number;
}

export interface SocketBridgeStatus {
  /** The generation last reconciled successfully. */
  observedGeneration?: number;
  /** "ready/declared", for the printer column. */
  queuesReady?: string;
  conditions?: Condition[];
  queues?: QueueStatus[];
}

/**
 * Kubernetes' object metadata. Custom-object calls hand back plain JSON, so the timestamps typed
 * as Date here are RFC 3339 strings at run time: only test them for presence.
 */
export type ObjectMeta = V1ObjectMeta;

export interface SocketBridge {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: SocketBridgeSpec;
  status?: SocketBridgeStatus;
}

/** The Ready condition, if the status has one. */
export function readyCondition(status: SocketBridgeStatus | undefined): Condition | undefined {
  return status?.conditions?.find((c) => c.type === 'Ready');
}
