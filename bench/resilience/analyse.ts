// From what the client and the upstream recorded in one run to the figures of the report.
// Success is a 2xx answer. Latency is every request's, whatever its outcome: a fast refusal and
// a slow success are both what the caller waited for.
import type { Arrival, Outcome } from './plan.ts';
import type { Scenario, Span } from './scenarios.ts';

/** Width of the bins the outage figures are read from. */
export const binMs = 250;
/** A bin fails fast when 90% of its requests ended within this. */
export const fastMs = 50;
/** A bin has recovered when at least this share of its requests succeeded. */
export const recoveredShare = 0.95;
/** Width of the bins of the outage chart. */
export const chartBinMs = 500;

export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
}

export interface OutageFigures {
  /** Seconds from the outage start until every later bin of the outage failed fast; null: never. */
  readonly failFastS: number | null;
  /** p99 latency of the answers the system made itself once failing fast (ms); null: none. */
  readonly refusalP99Ms: number | null;
  /** p99 latency of Breakwater's `circuit_open` answers during the outage (ms); null: none. */
  readonly circuitOpenP99Ms: number | null;
  /** Seconds from the outage end until every later bin had recovered; null: never. */
  readonly recoverS: number | null;
  /** Upstream requests / client requests, both started during the outage. */
  readonly amplification: number;
}

export interface NeighbourFigures {
  readonly baselineP99Ms: number;
  readonly faultP99Ms: number;
  readonly ratio: number;
  /** Catalog's success rate during the fault. */
  readonly faultSuccess: number;
}

export interface Bin {
  /** Start of the bin, seconds since time zero. */
  readonly t: number;
  readonly requests: number;
  readonly success: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

export interface RunFigures {
  readonly requests: number;
  readonly success: number;
  readonly latency: Latency;
  /** Upstream requests to orders / client requests to orders, over the measured span. */
  readonly amplification: number;
  /** Share of orders requests the system answered itself (no upstream answer reached the client). */
  readonly answeredBySystem: number;
  /** Orders requests that had no answer when the client stopped waiting. */
  readonly clientTimeouts: number;
  readonly outage?: OutageFigures;
  readonly neighbour?: NeighbourFigures;
  /** Orders over time, in chartBinMs bins. */
  readonly series: readonly Bin[];
}

/** Nearest-rank percentile of values sorted ascending (q in 0..1); NaN for none. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

function sortedLatencies(outcomes: readonly Outcome[]): number[] {
  return outcomes.map((o) => o.latencyMs).sort((a, b) => a - b);
}

const succeeded = (o: Outcome): boolean => o.status >= 200 && o.status < 300;
const within = (span: Span) => (item: { t: number }): boolean => item.t >= span.fromMs && item.t < span.toMs;

function successShare(outcomes: readonly Outcome[]): number {
  return outcomes.length === 0 ? Number.NaN : outcomes.filter(succeeded).length / outcomes.length;
}

function bins(outcomes: readonly Outcome[], span: Span, width: number): Bin[] {
  const result: Bin[] = [];
  for (let from = span.fromMs; from < span.toMs; from += width) {
    const inBin = outcomes.filter(within({ fromMs: from, toMs: Math.min(from + width, span.toMs) }));
    const latencies = sortedLatencies(inBin);
    result.push({
      t: from / 1000,
      requests: inBin.length,
      success: successShare(inBin),
      p50: percentile(latencies, 0.5),
      p90: percentile(latencies, 0.9),
      p99: percentile(latencies, 0.99),
    });
  }
  return result;
}

/** Index of the first bin from which `holds` is true of every later bin; undefined: none. */
function settledFrom(list: readonly Bin[], holds: (bin: Bin) => boolean): number | undefined {
  let first: number | undefined;
  for (let i = list.length - 1; i >= 0; i--) {
    const bin = list[i] as Bin;
    if (bin.requests > 0 && !holds(bin)) break;
    first = i;
  }
  return first;
}

function outageFigures(orders: readonly Outcome[], arrivals: readonly Arrival[], outage: Span, end: number): OutageFigures {
  const during = orders.filter(within(outage));
  const fastFrom = settledFrom(bins(during, outage, binMs), (bin) => bin.p90 <= fastMs);
  const failFastS = fastFrom === undefined ? null : (fastFrom * binMs) / 1000;
  const refusals =
    failFastS === null ? [] : during.filter((o) => o.t >= outage.fromMs + failFastS * 1000 && !succeeded(o) && o.by === 'proxy');
  const circuitOpen = during.filter((o) => o.reason === 'circuit_open');
  const after = bins(orders, { fromMs: outage.toMs, toMs: end }, binMs);
  const recoveredFrom = settledFrom(after, (bin) => bin.success >= recoveredShare);
  return {
    failFastS,
    refusalP99Ms: refusals.length === 0 ? null : percentile(sortedLatencies(refusals), 0.99),
    circuitOpenP99Ms: circuitOpen.length === 0 ? null : percentile(sortedLatencies(circuitOpen), 0.99),
    recoverS: recoveredFrom === undefined ? null : (recoveredFrom * binMs) / 1000,
    amplification: arrivals.filter(within(outage)).length / Math.max(1, during.length),
  };
}

function neighbourFigures(catalog: readonly Outcome[], neighbour: NonNullable<Scenario['neighbour']>): NeighbourFigures {
  const baseline = catalog.filter(within(neighbour.baseline));
  const fault = catalog.filter(within(neighbour.fault));
  const baselineP99Ms = percentile(sortedLatencies(baseline), 0.99);
  const faultP99Ms = percentile(sortedLatencies(fault), 0.99);
  return { baselineP99Ms, faultP99Ms, ratio: faultP99Ms / baselineP99Ms, faultSuccess: successShare(fault) };
}

/**
 * The figures of one run. `arrivals` are the upstream's; only orders' count towards
 * amplification (`ordersEndpoints` are their indexes in the plan).
 */
export function analyse(scenario: Scenario, outcomes: readonly Outcome[], arrivals: readonly Arrival[], ordersEndpoints: ReadonlySet<number>): RunFigures {
  const orders = outcomes.filter((o) => o.service === 'orders');
  const catalog = outcomes.filter((o) => o.service === 'catalog');
  const ordersArrivals = arrivals.filter((a) => ordersEndpoints.has(a.endpoint));
  const measured = orders.filter(within(scenario.measured));
  const latencies = sortedLatencies(measured);
  return {
    requests: measured.length,
    success: successShare(measured),
    latency: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), p999: percentile(latencies, 0.999) },
    amplification: ordersArrivals.filter(within(scenario.measured)).length / Math.max(1, measured.length),
    answeredBySystem: measured.filter((o) => o.by === 'proxy').length / Math.max(1, measured.length),
    clientTimeouts: measured.filter((o) => o.reason === 'client-timeout').length,
    ...(scenario.outage === undefined ? {} : { outage: outageFigures(orders, ordersArrivals, scenario.outage, scenario.durationMs) }),
    ...(scenario.neighbour === undefined ? {} : { neighbour: neighbourFigures(catalog, scenario.neighbour) }),
    series: bins(orders, { fromMs: 0, toMs: scenario.durationMs }, chartBinMs),
  };
}
