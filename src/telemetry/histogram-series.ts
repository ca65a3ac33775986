// Histogram series whose observations are counted in plain numbers and handed to prom-client
// when the registry is read, as the counters' increments are (metrics.ts). prom-client's own
// `observe` validates the label set, hashes it and allocates on every call, and a request makes
// several observations; here one is a bucket search and three additions.

import type { Histogram } from './prom.ts';

/** prom-client's record of one histogram series (lib/histogram.js, createBaseValues): what its exposition reads. */
interface PromSeriesValues {
  readonly labels: Readonly<Record<string, string>>;
  readonly bucketValues: Record<string, number>;
  sum: number;
  count: number;
}

/** The parts of prom-client's Histogram read here (lib/histogram.js, at the version package.json pins). */
interface PromHistogramParts {
  readonly labelNames: readonly string[];
  readonly upperBounds: readonly number[];
  readonly hashMap: Record<string, PromSeriesValues>;
  zero(labels: Record<string, string>): void;
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>, names: readonly string[]): boolean {
  return names.every((name) => a[name] === b[name]);
}

/** One labelled series of a prom-client histogram, observed here and handed over by `flush`. */
export class HistogramSeries {
  readonly #bounds: readonly number[];
  readonly #values: PromSeriesValues;
  /** Observations not yet handed over, per bucket: above the bound before, at most this bound. */
  readonly #pending: Float64Array;
  #sum = 0;
  #count = 0;

  /** The series of `histogram` with these label values, in the order of its label names. */
  constructor(histogram: Histogram, labelValues: readonly string[]) {
    const parts = histogram as unknown as PromHistogramParts;
    const labels: Record<string, string> = {};
    parts.labelNames.forEach((name, i) => (labels[name] = labelValues[i] ?? ''));
    const find = (): PromSeriesValues | undefined => Object.values(parts.hashMap).find((values) => sameLabels(values.labels, labels, parts.labelNames));
    let values = find();
    if (values === undefined) {
      // Exported from now on, at zero until the first flush, as prom-client does for a series it has seen.
      parts.zero(labels);
      values = find()!;
    }
    this.#values = values;
    this.#bounds = parts.upperBounds;
    this.#pending = new Float64Array(this.#bounds.length);
  }

  observe(value: number): void {
    // prom-client refuses a value that is not a finite number; nothing observed here is one
    // (durations, and what is left of deadlines, clamped at zero), and the hot path never throws.
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    // Above the last bound it counts in +Inf alone, which is the series' count.
    if (bucket < bounds.length) this.#pending[bucket]! += 1;
    this.#sum += value;
    this.#count += 1;
  }

  /** Hands what was observed since the last flush to prom-client. */
  flush(): void {
    if (this.#count === 0) return;
    const { bucketValues } = this.#values;
    const pending = this.#pending;
    for (let bucket = 0; bucket < pending.length; bucket++) {
      const observed = pending[bucket]!;
      if (observed === 0) continue;
      bucketValues[this.#bounds[bucket]!]! += observed;
      pending[bucket] = 0;
    }
    this.#values.sum += this.#sum;
    this.#values.count += this.#count;
    this.#sum = 0;
    this.#count = 0;
  }
}

/** Flushes every series in `all`; call it from the histogram's `collect` hook. */
export function flushHistograms(all: readonly HistogramSeries[]): void {
  for (const series of all) series.flush();
}
