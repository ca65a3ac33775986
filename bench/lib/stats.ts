// Per-run samples and their summary over rounds: medians, ranges, and which rounds count.

export type Phase = 'saturation' | 'fixed-rate' | 'interleaved';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

/** One measured wrk run against one target. */
export interface Sample {
  target: string;
  phase: Phase;
  round: number;
  requests: number;
  rps: number;
  errors: number;
  latencyUs: Percentiles;
  /** Proxy process tree; absent for direct. */
  proxyCpuUsPerRequest: number | undefined;
  /** Share of one core the proxy tree used during the run (1 = a whole core). */
  proxyCpuShare: number | undefined;
  peakRssBytes: number | undefined;
  /** The proxy's VmRSS after it started and answered once, before any load; only on runs it was started for. */
  idleRssBytes?: number;
  /** Share of one core used by processes the benchmark did not start. */
  foreignCpuShare: number;
  /** Busy share of each core during the run. */
  coreBusy: number[];
  clean: boolean;
  /** In the interleaved phase: which start of the rows the run was made on, from 1. */
  start?: number;
  /** For rows with a state store: the 99th percentile of each store operation during the run, in ms. */
  storeP99Ms?: Record<string, number>;
}

export interface Summary {
  target: string;
  phase: Phase;
  roundsRun: number;
  roundsClean: number;
  roundsUsed: number;
  rps: { median: number; min: number; max: number };
  latencyUs: Percentiles;
  proxyCpuUsPerRequest: number | undefined;
  proxyCpuShare: number | undefined;
  /** Largest over the rounds used. */
  peakRssBytes: number | undefined;
  /** Median over the rounds used. */
  idleRssBytes: number | undefined;
  /** Total over the rounds used. */
  errors: number;
  maxForeignCpuShare: number;
  /** For rows with a state store: each operation's p99 in ms, median over the runs used. */
  storeP99Ms?: Record<string, number>;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function medianOfDefined(values: readonly (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length === 0 ? undefined : median(defined);
}

/**
 * The rounds a summary is made of: the clean ones when there are at least two (or the only
 * round, when just one was run), else all of them, since a disturbed figure beats none.
 */
export function roundsToUse(samples: readonly Sample[]): Sample[] {
  const clean = samples.filter((s) => s.clean);
  return clean.length >= Math.min(2, samples.length) ? clean : [...samples];
}

export function summarise(samples: readonly Sample[]): Summary {
  const first = samples[0];
  if (first === undefined) throw new Error('no samples to summarise');
  const used = roundsToUse(samples);
  const rps = used.map((s) => s.rps);
  const rss = used.map((s) => s.peakRssBytes).filter((v): v is number => v !== undefined);
  return {
    target: first.target,
    phase: first.phase,
    roundsRun: samples.length,
    roundsClean: samples.filter((s) => s.clean).length,
    roundsUsed: used.length,
    rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
    latencyUs: {
      p50: median(used.map((s) => s.latencyUs.p50)),
      p90: median(used.map((s) => s.latencyUs.p90)),
      p99: median(used.map((s) => s.latencyUs.p99)),
      p999: median(used.map((s) => s.latencyUs.p999)),
    },
    proxyCpuUsPerRequest: medianOfDefined(used.map((s) => s.proxyCpuUsPerRequest)),
    proxyCpuShare: medianOfDefined(used.map((s) => s.proxyCpuShare)),
    peakRssBytes: rss.length === 0 ? undefined : Math.max(...rss),
    idleRssBytes: medianOfDefined(used.map((s) => s.idleRssBytes)),
    errors: used.reduce((sum, s) => sum + s.errors, 0),
    maxForeignCpuShare: Math.max(...used.map((s) => s.foreignCpuShare)),
    ...storeSummary(used),
  };
}

/** The median over the runs of each store operation's p99; nothing for rows without a store. */
function storeSummary(used: readonly Sample[]): { storeP99Ms?: Record<string, number> } {
  const operations = new Set(used.flatMap((s) => Object.keys(s.storeP99Ms ?? {})));
  if (operations.size === 0) return {};
  const summary: Record<string, number> = {};
  for (const operation of operations) {
    summary[operation] = median(used.map((s) => s.storeP99Ms?.[operation]).filter((v): v is number => v !== undefined));
  }
  return { storeP99Ms: summary };
}

/**
 * The distribution-free confidence interval of a median: the k-th smallest and k-th largest
 * of n values, with k the largest for which P(Binomial(n, ½) < k) ≤ (1 − level) / 2. Undefined
 * when n is too small for the level (fewer than 6 values for 95%).
 */
export function medianInterval(values: readonly number[], level = 0.95): { low: number; high: number } | undefined {
  const n = values.length;
  const tail = (1 - level) / 2;
  let below = 0;
  let k = 0;
  for (let i = 0; i < n; i++) {
    below += binomialHalf(n, i);
    if (below > tail) break;
    k = i + 1;
  }
  if (k === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return { low: sorted[k - 1] as number, high: sorted[n - k] as number };
}

/** P(Binomial(n, ½) = i). */
function binomialHalf(n: number, i: number): number {
  let p = 0.5 ** n;
  for (let j = 1; j <= i; j++) p *= (n - j + 1) / j;
  return p;
}

/** A row compared with a base row run by run: the runs of one cycle form a pair. */
export interface PairedComparison {
  target: string;
  base: string;
  pairs: number;
  /** target req/s ÷ base req/s of the same cycle. */
  rpsRatio: { median: number; interval: { low: number; high: number } | undefined };
  /** base CPU/req ÷ target CPU/req of the same cycle: like the req/s ratio, below 1 when the target costs more. */
  cpuRatio: number | undefined;
  /** The median req/s ratio of each start's pairs, in start order: how far starts of one build differ. */
  byStart: number[];
}

/**
 * Compares `target` with `base` over the cycles where both have a run that counts (clean
 * runs, when at least two cycles have both clean). Pairing runs made seconds apart cancels
 * the machine's slow drifts, which move both runs of a pair alike.
 */
export function comparePaired(samples: readonly Sample[], target: string, base: string): PairedComparison | undefined {
  const cycles = new Map<number, { base?: Sample; target?: Sample }>();
  for (const s of samples) {
    if (s.target !== target && s.target !== base) continue;
    const cycle = cycles.get(s.round) ?? {};
    if (s.target === base) cycle.base = s;
    else cycle.target = s;
    cycles.set(s.round, cycle);
  }
  const all = [...cycles.values()].filter((c): c is { base: Sample; target: Sample } => c.base !== undefined && c.target !== undefined);
  const clean = all.filter((c) => c.base.clean && c.target.clean);
  const used = clean.length >= Math.min(2, all.length) ? clean : all;
  if (used.length === 0) return undefined;
  const ratios = used.map((c) => c.target.rps / c.base.rps);
  const cpuRatios = used
    .filter((c) => c.base.proxyCpuUsPerRequest !== undefined && c.target.proxyCpuUsPerRequest !== undefined)
    .map((c) => (c.base.proxyCpuUsPerRequest as number) / (c.target.proxyCpuUsPerRequest as number));
  return {
    target,
    base,
    pairs: used.length,
    rpsRatio: { median: median(ratios), interval: medianInterval(ratios) },
    cpuRatio: cpuRatios.length === 0 ? undefined : median(cpuRatios),
    byStart: medianByStart(used),
  };
}

function medianByStart(pairs: readonly { base: Sample; target: Sample }[]): number[] {
  const ratios = new Map<number, number[]>();
  for (const { base, target } of pairs) {
    if (target.start === undefined) continue;
    const list = ratios.get(target.start) ?? [];
    list.push(target.rps / base.rps);
    ratios.set(target.start, list);
  }
  return [...ratios.entries()].sort(([a], [b]) => a - b).map(([, list]) => median(list));
}
