import { compareOffsets } from '@socketbridge/common/channels';
import type { Envelope } from '@socketbridge/common/channels';

export type Delivery = { kind: 'deliver'; envelope: Envelope } | { kind: 'duplicate'; envelope: Envelope };

/**
 * One channel's delivery order. Each envelope names the offset before it (`prev`), so a gap is
 * visible the moment a message arrives whose `prev` is not the last one delivered: that message
 * waits here until recovery fills the gap from history. Offsets at or below the last delivered are
 * duplicates (a redelivery, or the same message live and recovered) and are dropped.
 */
export class ChannelOrder {
  /** The last offset delivered to the application; undefined until the first message. */
  last: string | undefined;
  private readonly waiting = new Map<string, Envelope>();

  constructor(since?: string) {
    this.last = since;
  }

  get hasGap(): boolean {
    return this.waiting.size > 0;
  }

  /** A live message: deliver it (and whatever it unblocks), drop it, or hold it behind a gap. */
  accept(envelope: Envelope): Delivery[] {
    // The common case first, without comparing offsets: the successor of what was delivered last
    // (its offset is past `last`, so it cannot be a duplicate).
    if (this.last === undefined || envelope.prev === this.last) return this.deliverFrom(envelope);
    if (compareOffsets(envelope.offset, this.last) <= 0) return [{ kind: 'duplicate', envelope }];
    if (this.waiting.has(envelope.offset)) return [{ kind: 'duplicate', envelope }];
    this.waiting.set(envelope.offset, envelope);
    return [];
  }

  /** History entries after `last`, in order: they close the gap; held messages follow. */
  recovered(entries: Envelope[]): Delivery[] {
    const out: Delivery[] = [];
    for (const entry of entries) {
      if (this.last !== undefined && compareOffsets(entry.offset, this.last) <= 0) continue;
      this.waiting.delete(entry.offset);
      out.push(...this.deliverFrom(entry));
    }
    return out;
  }

  /**
   * History could not reach back: carry on from what history still holds (`entries`, from its
   * start; none means the next message starts a new chain at `0-0`), then from what is held.
   * The caller reports the gap; what fell in it is gone.
   */
  skipGap(entries: Envelope[]): Delivery[] {
    const out: Delivery[] = [];
    if (entries.length === 0) this.last = '0-0';
    for (const entry of entries) {
      if (this.last !== undefined && compareOffsets(entry.offset, this.last) <= 0) continue;
      this.waiting.delete(entry.offset);
      this.last = entry.offset;
      out.push({ kind: 'deliver', envelope: entry });
    }
    for (let next = this.findWaitingAfter(this.last!); next; next = this.findWaitingAfter(this.last!)) {
      this.waiting.delete(next.offset);
      this.last = next.offset;
      out.push({ kind: 'deliver', envelope: next });
    }
    // Held messages the new chain already passed are duplicates of what was just delivered.
    for (const [offset, envelope] of this.waiting) {
      if (compareOffsets(offset, this.last!) <= 0) {
        this.waiting.delete(offset);
        out.push({ kind: 'duplicate', envelope });
      }
    }
    return out;
  }

  /** Without recovery (plain SCC): deliver what is held, in offset order, and carry on from there. */
  releaseHeld(): Delivery[] {
    const held = [...this.waiting.values()].sort((a, b) => compareOffsets(a.offset, b.offset));
    this.waiting.clear();
    return held.map((envelope) => {
      this.last = envelope.offset;
      return { kind: 'deliver', envelope };
    });
  }

  private deliverFrom(envelope: Envelope): Delivery[] {
    const out: Delivery[] = [{ kind: 'deliver', envelope }];
    this.last = envelope.offset;
    // Whatever waited for this one follows, in chain order.
    for (let next = this.findWaitingAfter(this.last); next; next = this.findWaitingAfter(this.last)) {
      this.waiting.delete(next.offset);
      this.last = next.offset;
      out.push({ kind: 'deliver', envelope: next });
    }
    return out;
  }

  private findWaitingAfter(offset: string): Envelope | undefined {
    for (const envelope of this.waiting.values()) if (envelope.prev === offset) return envelope;
    return undefined;
  }
}
