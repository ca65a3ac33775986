// Per-run samples and their summary over rounds: medians, ranges, and which rounds count.

export type Phase = 'saturation' | 'fixed-rate';

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
  /** Share of one core used by processes the benchmark did not start. */
  foreignCpuShare: number;
  /** Busy share of each core during the run. */
  coreBusy: number[];
  clean: boolean;
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
  /** Total over the rounds used. */
  errors: number;
  maxForeignCpuShare: number;
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
    errors: used.reduce((sum, s) => sum + s.errors, 0),
    maxForeignCpuShare: Math.max(...used.map((s) => s.foreignCpuShare)),
  };
}
