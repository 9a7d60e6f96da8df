import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '@socketbridge/common';
import { apiMessage, statusCode, type KubeApi } from './kube.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** A follower takes over once the lease has not changed for this long. */
  leaseDurationMs: number;
  /** The leader steps down when it could not renew for this long (less than leaseDurationMs). */
  renewDeadlineMs: number;
  /** How often to try to acquire or renew. */
  retryPeriodMs: number;
}

export interface LeaderCallbacks {
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
  onNewLeader?: (identity: string | undefined) => void;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's: the holder renews every
 * retry period; a lease whose record has not changed for the lease's own
 * `spec.leaseDurationSeconds` (as this replica observed it, so clocks need not agree) is free to
 * take; every write carries the resourceVersion it read, so two replicas cannot both win. Every
 * renew attempt runs under an aborting deadline: the last successful renew plus the renew
 * deadline. When it passes (a hung connection included) the leader stops leading before any
 * follower can start (renew deadline < lease duration); the caller then stops writing at once.
 */
export class LeaderElector {
  private leader = false;
  private stopped = false;
  private observedVersion: string | undefined;
  private observedAt = 0;
  private lastRenew = 0;
  private currentHolder: string | undefined;
  private contacted = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly api: KubeApi,
    private readonly options: LeaderElectionOptions,
    private readonly logger: Logger,
    private readonly callbacks: LeaderCallbacks,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  /** Whether this replica may write now: it leads and renewed within the renew deadline (a fence for in-flight work). */
  get mayWrite(): boolean {
    return this.leader && Date.now() - this.lastRenew < this.options.renewDeadlineMs;
  }

  /** True once the API server answered at least once (this replica knows whether it leads). */
  get hasContact(): boolean {
    return this.contacted;
  }

  get holder(): string | undefined {
    return this.currentHolder;
  }

  run(): void {
    this.loop ??= this.campaign();
  }

  private async campaign(): Promise<void> {
    while (!this.stopped) {
      // A leader's attempt may not outlive its renew deadline: the request is aborted then.
      const deadline = this.leader ? this.lastRenew + this.options.renewDeadlineMs - Date.now() : this.options.renewDeadlineMs;
      const attemptedAt = Date.now();
      const outcome = await this.tryAcquireOrRenew(AbortSignal.timeout(Math.max(1, deadline)));
      if (this.stopped) break;
      if (outcome === 'held') {
        // From when the attempt started: the server wrote the renewal after that, so followers count from later.
        this.lastRenew = attemptedAt;
        if (!this.leader) {
          this.leader = true;
          this.logger.info({ lease: `${this.options.namespace}/${this.options.name}` }, 'became the leader');
          await this.callbacks.onStartedLeading();
        }
      } else if (this.leader && (outcome === 'taken' || Date.now() - this.lastRenew >= this.options.renewDeadlineMs)) {
        this.leader = false;
        if (outcome === 'taken') this.logger.warn({ leader: this.currentHolder ?? null }, 'another replica holds the lease: stopped leading');
        else this.logger.warn({ renewDeadlineMs: this.options.renewDeadlineMs }, 'could not renew the lease in time: stopped leading');
        await this.callbacks.onStoppedLeading();
      }
      await this.sleep(this.jittered());
    }
  }

  private jittered(): number {
    // Followers spread their attempts a little; the leader renews on the period.
    return this.leader ? this.options.retryPeriodMs : Math.round(this.options.retryPeriodMs * (1 + Math.random() * 0.2));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private spec(now: Date, previous: V1Lease | undefined) {
    const mine = previous?.spec?.holderIdentity === this.options.identity;
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.options.leaseDurationMs / 1000)),
      acquireTime: mine && previous?.spec?.acquireTime ? previous.spec.acquireTime : new V1MicroTime(now.getTime()),
      renewTime: new V1MicroTime(now.getTime()),
      leaseTransitions: (previous?.spec?.leaseTransitions ?? 0) + (mine || !previous ? 0 : 1),
    };
  }

  private observe(lease: V1Lease): void {
    const version = lease.metadata?.resourceVersion;
    if (version !== this.observedVersion) {
      this.observedVersion = version;
      this.observedAt = Date.now();
    }
    const holder = lease.spec?.holderIdentity || undefined;
    if (holder !== this.currentHolder) {
      this.currentHolder = holder;
      if (holder !== this.options.identity) this.logger.info({ leader: holder ?? null }, holder ? 'another replica leads' : 'the lease is free');
      this.callbacks.onNewLeader?.(holder);
    }
  }

  /** held: this replica holds the lease now; taken: another replica holds it; failed: no answer, or a lost race. */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<'held' | 'taken' | 'failed'> {
    const { namespace, name, identity } = this.options;
    try {
      const now = new Date();
      const current = await this.api.readLease(namespace, name, signal);
      this.contacted = true;
      if (!current) {
        const created = await this.api.createLease(namespace, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: this.spec(now, undefined) }, signal);
        this.observe(created);
        return 'held';
      }
      this.observe(current);
      const holder = current.spec?.holderIdentity;
      // Expiry by the Lease's own duration, as client-go judges it (the holder chose it; ours may differ).
      const durationMs = (current.spec?.leaseDurationSeconds ?? Math.ceil(this.options.leaseDurationMs / 1000)) * 1000;
      if (holder && holder !== identity && Date.now() < this.observedAt + durationMs) return 'taken';
      const updated = await this.api.replaceLease(
        namespace,
        name,
        {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { ...current.metadata, name, namespace },
          spec: this.spec(now, current),
        },
        signal,
      );
      this.observe(updated);
      return 'held';
    } catch (error) {
      const code = statusCode(error);
      // 409: another replica wrote first (it created or took the lease); it leads.
      if (code !== 409) this.logger.warn({ err: apiMessage(error) }, 'lease request failed');
      return 'failed';
    }
  }

  /** Stops campaigning; a leader stops leading and, with `release`, frees the lease for a follower at once. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    if (!this.leader) return;
    // Still the holder while in-flight work drains (the fence still applies: no writes past the renew deadline).
    await this.callbacks.onStoppedLeading();
    this.leader = false;
    if (release) await this.release();
  }

  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      const current = await this.api.readLease(namespace, name);
      if (!current || current.spec?.holderIdentity !== identity) return;
      const now = new V1MicroTime(Date.now());
      await this.api.replaceLease(namespace, name, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: current.metadata ?? { name, namespace },
        spec: { leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: current.spec?.leaseTransitions ?? 0 },
      });
      this.logger.info({ lease: `${namespace}/${name}` }, 'released the lease');
    } catch (error) {
      this.logger.warn({ err: apiMessage(error) }, 'could not release the lease: a follower takes over when it expires');
    }
  }
}
