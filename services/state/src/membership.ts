import { type BrokersSnapshot, type InstanceType, type WorkersSnapshot } from '@socketbridge/common';

export interface Member {
  socketId: string;
  type: InstanceType;
  instanceId: string;
  uri: string;
  joinedAt: number;
}

/**
 * Who is in the cluster, keyed by the member's state-server socket: a member leaves by
 * disconnecting, so the socket is its identity. URIs are sorted and de-duplicated so every
 * worker hashes channels over the same list.
 */
export class Membership {
  private readonly members = new Map<string, Member>();
  private lastTime = 0;

  join(member: Member): { changed: boolean } {
    const before = this.members.get(member.socketId);
    this.members.set(member.socketId, member);
    return { changed: before?.uri !== member.uri || before.type !== member.type };
  }

  leave(socketId: string): Member | undefined {
    const member = this.members.get(socketId);
    this.members.delete(socketId);
    return member;
  }

  get(socketId: string): Member | undefined {
    return this.members.get(socketId);
  }

  list(type: InstanceType): Member[] {
    return [...this.members.values()].filter((m) => m.type === type).sort((a, b) => a.joinedAt - b.joinedAt);
  }

  uris(type: InstanceType): string[] {
    return [...new Set(this.list(type).map((m) => m.uri))].sort();
  }

  /** Strictly increasing even when two snapshots fall in one millisecond, since workers drop any that is not newer. */
  nextTime(now = Date.now()): number {
    this.lastTime = Math.max(now, this.lastTime + 1);
    return this.lastTime;
  }

  brokersSnapshot(): BrokersSnapshot {
    return { sccBrokerURIs: this.uris('scc-broker'), time: this.nextTime() };
  }

  workersSnapshot(): WorkersSnapshot {
    return { sccWorkerURIs: this.uris('scc-worker'), time: this.nextTime() };
  }
}

