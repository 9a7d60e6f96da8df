import type { ClientStats } from '@socketbridge/client';
import { compareOffsets, type Envelope } from '@socketbridge/common';
import { LatencyHistogram } from './percentile.js';

/** What the client library counted over every socket (its `stats`, summed). */
export type LibraryCounts = Pick<ClientStats, 'recovered' | 'duplicates' | 'gaps'>;

const NOTHING: LibraryCounts = { recovered: 0, duplicates: 0, gaps: 0 };

export interface Summary {
  received: number;
  /** Messages per second between the first and the last message (0 with fewer than two). */
  rate: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Dropped by the client library, plus any the check here still saw (should be none). */
  duplicates: number;
  /** Delivered from history after a reconnect or a gap (by the client library). */
  recovered: number;
  /** Stretches the client library could not recover: their messages are lost. */
  gaps: number;
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

/**
 * Counts, latencies and duplicates over a whole run, plus a window the progress line reads and resets each second.
 * The client library drops duplicates and delivers in order; the check here only confirms it.
 */
export class Stats {
  received = 0;
  duplicates = 0;
  private readonly all = new LatencyHistogram();
  private readonly window = new LatencyHistogram();
  private windowCount = 0;
  private windowStart: number;
  private firstAt: number | undefined;
  private lastAt: number | undefined;
  /** The last offset delivered per socket and channel. */
  private readonly last = new Map<string, string>();

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

    // Each socket receives each channel's messages once and in offset order: an offset at or below the last is a duplicate.
    const key = `${socket}\n${channel}`;
    const last = this.last.get(key);
    if (last !== undefined && compareOffsets(message.offset, last) <= 0) this.duplicates++;
    else this.last.set(key, message.offset);
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

  summary(library: LibraryCounts = NOTHING): Summary {
    // N messages span N-1 gaps; a burst inside one clock millisecond counts as taking a millisecond.
    const span = this.firstAt !== undefined && this.lastAt !== undefined ? Math.max(0.001, (this.lastAt - this.firstAt) / 1000) : 0;
    const rate = this.received > 1 ? (this.received - 1) / span : 0;
    return {
      received: this.received,
      rate: Math.round(rate * 10) / 10,
      p50Ms: this.all.percentile(50) ?? null,
      p99Ms: this.all.percentile(99) ?? null,
      maxMs: this.all.count ? this.all.max : null,
      duplicates: library.duplicates + this.duplicates,
      recovered: library.recovered,
      gaps: library.gaps,
    };
  }
}
