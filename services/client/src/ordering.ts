import { OFFSET, compareOffsets } from '@socketbridge/common/channels';
import type { Envelope } from '@socketbridge/common/channels';

export type Delivery =
  | { kind: 'deliver'; envelope: Envelope }
  | { kind: 'duplicate'; envelope: Envelope }
  /** Not delivered: malformed, or not confirmed by the channel's history (forged, e.g.). */
  | { kind: 'refused'; envelope: Envelope; reason: string };

/**
 * How far past this device's clock an offset's time may lie (Redis's clock and the device's
 * differ). An envelope further ahead would make every real message after it look like a
 * duplicate, so it is refused rather than trusted.
 */
export const MAX_FUTURE_MS = 10 * 60 * 1000;

/** Why an envelope cannot be taken at its word, or undefined. */
export function envelopeProblem(envelope: Envelope, now = Date.now()): string | undefined {
  if (!envelope || typeof envelope !== 'object') return 'not an envelope';
  const { offset, prev } = envelope;
  if (typeof offset !== 'string' || !OFFSET.test(offset) || typeof prev !== 'string' || !OFFSET.test(prev)) return 'malformed offset or prev';
  if (compareOffsets(prev, offset) >= 0) return 'prev is not before offset';
  if (Number(offset.split('-')[0]) > now + MAX_FUTURE_MS) return 'offset lies in the future';
  return undefined;
}

/**
 * One channel's delivery order. Each envelope names the offset before it (`prev`), so a gap is
 * visible the moment a message arrives whose `prev` is not the last one delivered: that message
 * waits here until recovery fills the gap from history. Offsets at or below the last delivered are
 * duplicates (a redelivery, or the same message live and recovered) and are dropped.
 *
 * A jump is never trusted: a message that does not chain waits for history to confirm it, and one
 * still waiting after a complete recovery that began after it arrived is not in history: refused.
 */
export class ChannelOrder {
  /** The last offset delivered to the application; undefined until the first message. */
  last: string | undefined;
  private readonly waiting = new Map<string, Envelope>();
  /** When each held envelope arrived (a count), to tell which a recovery could have confirmed. */
  private readonly arrivedAt = new WeakMap<Envelope, number>();
  private arrivals = 0;

  constructor(since?: string) {
    this.last = since;
  }

  get hasGap(): boolean {
    return this.waiting.size > 0;
  }

  /** A live message: deliver it (and whatever it unblocks), drop it, or hold it behind a gap. */
  accept(envelope: Envelope): Delivery[] {
    const problem = envelopeProblem(envelope);
    if (problem) return [{ kind: 'refused', envelope, reason: problem }];
    // The common case first, without comparing offsets: the successor of what was delivered last
    // (its offset is past `last`, so it cannot be a duplicate).
    if (this.last === undefined || envelope.prev === this.last) return this.deliverFrom(envelope);
    if (compareOffsets(envelope.offset, this.last) <= 0) return [{ kind: 'duplicate', envelope }];
    if (this.waiting.has(envelope.offset)) return [{ kind: 'duplicate', envelope }];
    this.waiting.set(envelope.offset, envelope);
    this.arrivedAt.set(envelope, ++this.arrivals);
    return [];
  }

  /** Take before asking history: `refuseUnconfirmed(mark)` then refuses only what this recovery could confirm. */
  mark(): number {
    return this.arrivals;
  }

  /**
   * After a recovery that read history up to its end: what was held when it was asked for and
   * still does not chain is not in the channel's history (history is written before any publish),
   * so it is refused rather than delivered or waited on forever.
   */
  refuseUnconfirmed(mark: number): Delivery[] {
    const out: Delivery[] = [];
    for (const [offset, envelope] of this.waiting) {
      if ((this.arrivedAt.get(envelope) ?? 0) > mark) continue;
      this.waiting.delete(offset);
      out.push({ kind: 'refused', envelope, reason: 'not in the channel history' });
    }
    return out;
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
