// An endpoint's attempt latencies over a sliding time window, for outlier detection's latency
// rule. A ring of DDSketches, one per tenth of the window, as the breaker's SlidingWindow keeps
// counts: memory stays bounded however many attempts pass, and a latency stops counting between
// 90% and 100% of the window after it was taken. DDSketch keeps each quantile within 1% of the
// true value whatever the spread of latencies.

import { DDSketch } from '@datadog/sketches-js';

const buckets = 10;

export class LatencyWindow {
  readonly #bucketMs: number;
  readonly #indexes = new Array<number>(buckets).fill(Number.NEGATIVE_INFINITY);
  readonly #sketches: DDSketch[] = Array.from({ length: buckets }, () => new DDSketch());

  constructor(windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError(`a latency window needs a positive length, got ${windowMs} ms`);
    this.#bucketMs = windowMs / buckets;
  }

  record(now: number, latencyMs: number): void {
    const index = Math.floor(now / this.#bucketMs);
    const slot = ((index % buckets) + buckets) % buckets;
    if (this.#indexes[slot] !== index) {
      this.#indexes[slot] = index;
      this.#sketches[slot] = new DDSketch();
    }
    this.#sketches[slot]!.accept(Math.max(0, latencyMs));
  }

  /** Latencies in the window as of `now`. */
  count(now: number): number {
    let count = 0;
    this.#forEachLive(now, (sketch) => (count += sketch.count));
    return count;
  }

  /** The median latency in the window as of `now`; undefined when it holds none. */
  median(now: number): number | undefined {
    const merged = new DDSketch();
    this.#forEachLive(now, (sketch) => merged.merge(sketch));
    return merged.count === 0 ? undefined : merged.getValueAtQuantile(0.5);
  }

  /** Forgets every latency. */
  reset(): void {
    this.#indexes.fill(Number.NEGATIVE_INFINITY);
  }

  #forEachLive(now: number, visit: (sketch: DDSketch) => void): void {
    const newest = Math.floor(now / this.#bucketMs);
    for (let slot = 0; slot < buckets; slot++) {
      const index = this.#indexes[slot]!;
      if (index > newest - buckets && index <= newest) visit(this.#sketches[slot]!);
    }
  }
}
