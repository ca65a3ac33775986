// Latencies of a route's successful attempts over a sliding window, and the percentile-based
// bounds drawn from them: an adaptive per-try timeout, a hedge delay. The distribution lives in
// DDSketch sketches (bounded memory, relative accuracy), one per slice of the window, so old
// slices fall out whole as time moves on.

import { DDSketch } from '@datadog/sketches-js';
import type { LatencyPercentileConfig } from '../../config/types.ts';

/** Slices a window is cut into: a latency stops counting between 5/6 and all of a window after it was seen. */
const slicesPerWindow = 6;

/** The sketches' relative accuracy: a p99 of 100 ms reads between 99 and 101 ms. */
const relativeAccuracy = 0.01;

/** How long a computed percentile is reused before the slices are merged again. */
const refreshMs = 250;

/** How many latencies a window holds, and the value at a quantile among them. */
export interface Quantile {
  readonly count: number;
  readonly value: number;
}

const noLatencies: Quantile = Object.freeze({ count: 0, value: 0 });

export class LatencyWindow {
  readonly windowMs: number;
  readonly #sliceMs: number;
  // Slice i covers [i * sliceMs, (i + 1) * sliceMs) and lives at i mod slicesPerWindow.
  readonly #indexes = new Array<number>(slicesPerWindow).fill(Number.NEGATIVE_INFINITY);
  readonly #sketches: DDSketch[] = Array.from({ length: slicesPerWindow }, () => new DDSketch({ relativeAccuracy }));
  #merged: DDSketch | undefined;
  #mergedAt = Number.NEGATIVE_INFINITY;
  #mergedSlice = Number.NEGATIVE_INFINITY;
  // The slices before the newest, merged once each time the newest slice changes: they take no
  // more latencies, so a refresh merges this and the newest slice alone.
  #closed: DDSketch | undefined;
  #closedBefore = Number.NEGATIVE_INFINITY;
  // The quantiles read from the merged sketch, kept until it is merged again: every request
  // reads the same one or two (a per-try timeout, a hedge delay).
  readonly #values = new Map<number, Quantile>();

  constructor(windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError(`a latency window needs a positive length, got ${windowMs} ms`);
    this.windowMs = windowMs;
    this.#sliceMs = windowMs / slicesPerWindow;
  }

  /** Counts one successful attempt that took `ms` to its response head. */
  record(ms: number, now: number): void {
    const index = Math.floor(now / this.#sliceMs);
    const slot = ((index % slicesPerWindow) + slicesPerWindow) % slicesPerWindow;
    if (this.#indexes[slot] !== index) {
      this.#indexes[slot] = index;
      this.#sketches[slot] = new DDSketch({ relativeAccuracy });
    }
    // A sketch keeps positive values apart from zero; a latency below a microsecond is one.
    this.#sketches[slot]!.accept(Math.max(ms, 0.001));
  }

  /** How many latencies the window holds now, and the value at quantile `q` (0..1) among them. */
  quantile(q: number, now: number): Quantile {
    const merged = this.#current(now);
    if (merged.count === 0) return noLatencies;
    let quantile = this.#values.get(q);
    if (quantile === undefined) {
      quantile = { count: merged.count, value: merged.getValueAtQuantile(q) };
      this.#values.set(q, quantile);
    }
    return quantile;
  }

  #current(now: number): DDSketch {
    const newest = Math.floor(now / this.#sliceMs);
    if (this.#merged !== undefined && newest === this.#mergedSlice && now - this.#mergedAt < refreshMs) return this.#merged;
    const merged = new DDSketch({ relativeAccuracy });
    merged.merge(this.#closedSlices(newest));
    const slot = ((newest % slicesPerWindow) + slicesPerWindow) % slicesPerWindow;
    if (this.#indexes[slot] === newest) merged.merge(this.#sketches[slot]!);
    this.#merged = merged;
    this.#values.clear();
    this.#mergedAt = now;
    this.#mergedSlice = newest;
    return merged;
  }

  /** The slices of the window before slice `newest`, merged. */
  #closedSlices(newest: number): DDSketch {
    if (this.#closed !== undefined && this.#closedBefore === newest) return this.#closed;
    const closed = new DDSketch({ relativeAccuracy });
    for (let slot = 0; slot < slicesPerWindow; slot++) {
      const index = this.#indexes[slot]!;
      if (index > newest - slicesPerWindow && index < newest) closed.merge(this.#sketches[slot]!);
    }
    this.#closed = closed;
    this.#closedBefore = newest;
    return closed;
  }
}

/**
 * A bound drawn from observed latencies: clamp(multiplier × the percentile, min, max); `max`
 * until the window holds `minSamples` latencies, since a percentile of a few is noise.
 */
export function percentileBound(config: LatencyPercentileConfig, window: LatencyWindow, now: number): number {
  const { count, value } = window.quantile(config.percentile / 100, now);
  if (count < config.minSamples) return config.maxMs;
  return Math.min(config.maxMs, Math.max(config.minMs, config.multiplier * value));
}
