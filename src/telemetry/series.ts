// Metric series found by their label values and batched until the registry is read. A
// prom-client increment or observation validates and hashes its label set on every call, which
// the hot path cannot afford (bench: bench/micro/telemetry.bench.ts); here the hot path keeps
// plain numbers and each family's `collect` hook hands them to prom-client before a scrape.

import type { Registry } from 'prom-client';
import { flushHistograms, HistogramSeries } from './histogram-series.ts';
import { Counter, Histogram } from './prom.ts';

/** A family's name, help text and label names, as its declaration gives them. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
}

/** A histogram family: the same, and its bucket bounds. */
export interface HistogramFamily extends MetricFamily {
  readonly buckets: readonly number[];
}

interface CounterChild {
  inc(value: number): void;
}

/** One counter series whose increments are batched until the registry is read. */
export interface CountedSeries {
  /** Increments not yet handed to prom-client; they are added when the registry is read. */
  pending: number;
  readonly count: CounterChild;
}

/**
 * Resolves a tuple of label values to its series with one Map lookup per label. The values are
 * mostly the same string instances call after call (names from the config), whose hashes V8
 * keeps, so this is cheaper than building and hashing a joined key string.
 */
export class SeriesIndex<S> {
  /** Every series created so far, for the flush before each read. */
  readonly all: S[] = [];
  readonly #root = new Map<string | number, unknown>();
  readonly #create: (labelValues: readonly string[]) => S;

  constructor(create: (labelValues: readonly string[]) => S) {
    this.#create = create;
  }

  get(labelValues: readonly (string | number)[]): S {
    let node = this.#root;
    const last = labelValues.length - 1;
    for (let i = 0; i < last; i++) {
      const value = labelValues[i] as string | number;
      let next = node.get(value) as Map<string | number, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(value, next);
      }
      node = next;
    }
    const leaf = labelValues[last] as string | number;
    let series = node.get(leaf) as S | undefined;
    if (series === undefined) {
      series = this.#create(labelValues.map(String));
      node.set(leaf, series);
      this.all.push(series);
    }
    return series;
  }
}

/** Hands the batched increments to prom-client; call it from the counter's `collect` hook. */
export function flushPending(all: readonly CountedSeries[]): void {
  for (const series of all) {
    if (series.pending > 0) {
      series.count.inc(series.pending);
      series.pending = 0;
    }
  }
}


/** A counter registered in `registry` whose series' increments are batched until it is read. */
export function batchedCounter(registry: Registry, family: MetricFamily): SeriesIndex<CountedSeries> {
  const counter: Counter = new Counter({
    name: family.name,
    help: family.help,
    labelNames: family.labelNames,
    registers: [registry],
    collect: (): void => flushPending(series.all),
  });
  const series = new SeriesIndex<CountedSeries>((labelValues) => ({ pending: 0, count: counter.labels(...labelValues) }));
  return series;
}

/** A histogram registered in `registry` whose series' observations are batched until it is read. */
export function batchedHistogram(registry: Registry, family: HistogramFamily): SeriesIndex<HistogramSeries> {
  const histogram = new Histogram({
    name: family.name,
    help: family.help,
    labelNames: [...family.labelNames],
    buckets: [...family.buckets],
    registers: [registry],
    collect: (): void => flushHistograms(series.all),
  });
  const series = new SeriesIndex((labelValues) => new HistogramSeries(histogram, labelValues));
  return series;
}
