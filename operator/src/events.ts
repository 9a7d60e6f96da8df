import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from '@socketbridge/common';
import { statusCode, apiMessage, type KubeApi } from './kube.js';
import type { SocketBridge } from './resource.js';

const REPEAT_WINDOW_MS = 10 * 60 * 1000;

/**
 * Kubernetes Events (core/v1) about SocketBridges, as `kubectl describe` shows them. A repeat of
 * the same event within ten minutes bumps the existing one's count (a patch) instead of adding
 * another. Recording never fails a reconcile: errors are logged.
 */
export class EventRecorder {
  private readonly recent = new Map<string, { name: string; namespace: string; count: number; first: Date; last: number }>();

  constructor(
    private readonly api: KubeApi,
    private readonly component: string,
    private readonly instance: string,
    private readonly logger: Logger,
  ) {}

  async record(object: SocketBridge, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const namespace = object.metadata.namespace ?? 'default';
    const key = `${object.metadata.uid}|${type}|${reason}|${message}`;
    const now = new Date();
    this.prune(now.getTime());
    const seen = this.recent.get(key);
    try {
      if (seen) {
        seen.count++;
        seen.last = now.getTime();
        try {
          await this.api.patchEvent(seen.namespace, seen.name, { count: seen.count, lastTimestamp: now.toISOString() });
          return;
        } catch (error) {
          if (statusCode(error) !== 404) throw error;
          this.recent.delete(key); // expired on the server: make a new one
        }
      }
      const name = `${object.metadata.name}.${Date.now().toString(16)}${randomBytes(2).toString('hex')}`;
      const event: CoreV1Event = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: object.apiVersion,
          kind: object.kind,
          name: object.metadata.name,
          namespace,
          uid: object.metadata.uid,
          resourceVersion: object.metadata.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.instance,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      };
      await this.api.createEvent(namespace, event);
      this.recent.set(key, { name, namespace, count: 1, first: now, last: now.getTime() });
    } catch (error) {
      this.logger.warn({ err: apiMessage(error), reason }, 'could not record an event');
    }
  }

  private prune(now: number): void {
    for (const [key, entry] of this.recent) if (now - entry.last > REPEAT_WINDOW_MS) this.recent.delete(key);
  }
}
