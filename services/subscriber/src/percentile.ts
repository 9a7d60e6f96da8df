/**
 * Latencies as counts per whole millisecond. A load run can see millions of messages; counting per
 * value keeps memory bounded by the spread of latencies instead of the number of messages, and
 * percentiles stay exact at the millisecond resolution the envelopes' timestamps have anyway.
 */
export class LatencyHistogram {
  private readonly counts = new Map<number, number>();
  private sorted: number[] | undefined;
  count = 0;
  max = 0;

  record(ms: number): void {
    // Clocks of the publisher's and our host may disagree by a little: never report below 0.
    const value = Math.max(0, Math.round(ms));
    const previous = this.counts.get(value);
    this.counts.set(value, (previous ?? 0) + 1);
    if (previous === undefined) this.sorted = undefined;
    this.count++;
    if (value > this.max) this.max = value;
  }

  /** Nearest-rank percentile (p in 0..100): the smallest value at least p% of samples are at or below; undefined without samples. */
  percentile(p: number): number | undefined {
    if (this.count === 0) return undefined;
    this.sorted ??= [...this.counts.keys()].sort((a, b) => a - b);
    const rank = Math.max(1, Math.ceil((Math.min(100, Math.max(0, p)) / 100) * this.count));
    let seen = 0;
    for (const value of this.sorted) {
      seen += this.counts.get(value)!;
      if (seen >= rank) return value;
    }
    return this.max;
  }

  reset(): void {
    this.counts.clear();
    this.sorted = undefined;
    this.count = 0;
    this.max = 0;
  }
}
