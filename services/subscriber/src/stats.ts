import type { Envelope } from '@socketbridge/common';
import { LatencyHistogram } from './percentile.js';

/**
 * Offsets remembered per socket and channel to spot duplicates. Bounded so a long load run over
 * thousands of sockets cannot grow without limit; a duplicate arriving more than this many
 * messages after its original goes unnoticed, far beyond any re-delivery the cluster makes.
 */
const DEDUP_WINDOW = 4096;

export interface Summary {
  received: number;
  /** Messages per second between the first and the last message (0 with fewer than two). */
  rate: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  duplicates: number;
}

export interface Sample {
  /** Messages per second since the previous sample. */
  rate: number;
  total: number;
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  maxMs: number | undefined;
}

export function isEnvelope(value: unknown): value is Envelope {
  if (value === null || typeof value !== 'object') return false;
  const { id, offset, ts } = value as Partial<Envelope>;
  return typeof id === 'string' && typeof offset === 'string' && typeof ts === 'number' && Number.isFinite(ts);
}

/** Counts, latencies and duplicates over a whole run, plus a window the progress line reads and resets each second. */
export class Stats {
  received = 0;
  duplicates = 0;
  private readonly all = new LatencyHistogram();
  private readonly window = new LatencyHistogram();
  private windowCount = 0;
  private windowStart: number;
  private firstAt: number | undefined;
  private lastAt: number | undefined;
  private readonly seen = new Map<string, Set<string>>();

  constructor(now = Date.now()) {
    this.windowStart = now;
  }

  /** One message as socket `socket` received it on `channel` at `receivedAt` (ms since the epoch). */
  record(socket: number, channel: string, message: unknown, receivedAt: number): void {
    this.received++;
    this.windowCount++;
    this.firstAt ??= receivedAt;
    this.lastAt = receivedAt;
    // Anything but an envelope (a client publish on an open channel) counts, but has no time or offset.
    if (!isEnvelope(message)) return;
    const latency = receivedAt - message.ts;
    this.all.record(latency);
    this.window.record(latency);

    // Each socket receives every message of its channels once: the same offset twice on one socket is a duplicate.
    const key = `${socket}\n${channel}`;
    let offsets = this.seen.get(key);
    if (!offsets) this.seen.set(key, (offsets = new Set()));
    if (offsets.has(message.offset)) {
      this.duplicates++;
      return;
    }
    offsets.add(message.offset);
    if (offsets.size > DEDUP_WINDOW) offsets.delete(offsets.values().next().value!);
  }

  /** What happened since the previous sample; starts the next window. */
  sample(now = Date.now()): Sample {
    const seconds = Math.max(0.001, (now - this.windowStart) / 1000);
    const sample: Sample = {
      rate: this.windowCount / seconds,
      total: this.received,
      p50Ms: this.window.percentile(50),
      p99Ms: this.window.percentile(99),
      maxMs: this.window.count ? this.window.max : undefined,
    };
    this.window.reset();
    this.windowCount = 0;
    this.windowStart = now;
    return sample;
  }

  summary(): Summary {
    // N messages span N-1 gaps; a burst inside one clock millisecond counts as taking a millisecond.
    const span = this.firstAt !== undefined && this.lastAt !== undefined ? Math.max(0.001, (this.lastAt - this.firstAt) / 1000) : 0;
    const rate = this.received > 1 ? (this.received - 1) / span : 0;
    return {
      received: this.received,
      rate: Math.round(rate * 10) / 10,
      p50Ms: this.all.percentile(50) ?? null,
      p99Ms: this.all.percentile(99) ?? null,
      maxMs: this.all.count ? this.all.max : null,
      duplicates: this.duplicates,
    };
  }
}
