/**
 * The SocketBridge resource (socketbridge.io/v1alpha1) as TypeScript sees it. The CRD
 * (manifests/crd/socketbridge.io_socketbridges.yaml) is the source of truth; operator/test/crd.test.ts
 * keeps these types in step with it (same fields, same required/optional split).
 *
 * Fields with a default in the CRD are optional here: that is how people write them, and a
 * spec that reaches the operator without defaults applied (an older CRD, local mode before
 * validation) must still mean the same thing. `toBridge` applies the defaults.
 */

import type { V1ObjectMeta } from '@kubernetes/client-node';

export const GROUP = 'socketbridge.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'SocketBridge';
export const PLURAL = 'socketbridges';
export const FINALIZER = 'socketbridge.io/finalizer';

export type ExchangeType = 'direct' | 'topic' | 'fanout' | 'headers';

export interface BindingSpec {
  exchange: string;
  type: ExchangeType;
  /** Default "". */
  routingKey?: string;
}

export interface RouteSpec {
  /** Template over {routingKey}, {headers.<name>}, {body.<field>}. */
  channel: string;
}

export interface QueueSpec {
  name: string;
  /** Default true. */
  durable?: boolean;
  /** Default false. */
  singleActiveConsumer?: boolean;
  /** Default []. */
  bindings?: BindingSpec[];
  route: RouteSpec;
}

export interface HistorySpec {
  /** Default 1000. */
  size?: number;
  /** Default 3600. */
  ttlSeconds?: number;
}

export interface ChannelSpec {
  pattern: string;
  access: 'public' | 'authenticated' | 'owner';
  history?: HistorySpec;
}

export interface SecretRef {
  name: string;
}

export interface RabbitMQSpec {
  connectionSecret?: SecretRef;
}

export type DeletionPolicy = 'retain' | 'delete';

export interface SocketBridgeSpec {
  rabbitmq?: RabbitMQSpec;
  queues: QueueSpec[];
  /** Default []. */
  channels?: ChannelSpec[];
  /** Default retain. */
  deletionPolicy?: DeletionPolicy;
}

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
