// From what the client and the upstream recorded in one run to the figures of the report.
// Success is a 2xx answer. Latency is every request's, whatever its outcome: a fast refusal and
// a slow success are both what the caller waited for.
import type { Arrival, Outcome } from './plan.ts';
import type { Scenario, Span } from './scenarios.ts';

/**
 * The outage figures are read from windows of `windowMs` of requests (by the time they were
 * due), starting every `stepMs`: a window is long enough that one stall of a busy machine does
 * not decide it, and the step sets the figures' resolution.
 */
export const windowMs = 1000;
export const stepMs = 250;
/** A window fails fast when 90% of its requests ended within this. */
export const fastMs = 50;
/** A window has recovered when at least this share of its requests succeeded. */
export const recoveredShare = 0.95;
/** Width of the bins of the outage chart. */
export const chartBinMs = 500;

export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
}

export interface OutageFigures {
  /** Seconds from the outage start until every later window of the outage failed fast; null: never. */
  readonly failFastS: number | null;
  /** p99 latency of the answers the system made itself once failing fast (ms); null: none. */
  readonly refusalP99Ms: number | null;
  /**
   * p99 latency of Breakwater's `circuit_open` answers to requests that arrived while the breaker
   * was open (refused before any attempt), as the client saw it (ms); null: none.
   */
  readonly circuitOpenP99Ms: number | null;
  /** Seconds from the outage end until every later window had recovered; null: never. */
  readonly recoverS: number | null;
  /** Upstream requests / client requests, both started during the outage. */
  readonly amplification: number;
}

export interface NeighbourFigures {
  readonly baselineP99Ms: number;
  readonly faultP99Ms: number;
  readonly ratio: number;
  /** The service's success rate during the fault. */
  readonly faultSuccess: number;
}

/** How a system cut attempts short, from what the upstream saw. */
export interface CutFigures {
  /** Attempts that were not hung and that the system gave up on before their answer. */
  readonly healthyCut: number;
  /** Every attempt that was not hung. */
  readonly healthy: number;
  /** Attempts that hung. */
  readonly hung: number;
  /** How long the system held a hung attempt before it gave up on it, median and p99 (ms); null: none given up on. */
  readonly hungHeldP50Ms: number | null;
  readonly hungHeldP99Ms: number | null;
  /** The mean of the same times: a hung attempt's cost on average, wherever it fell (ms); null: none. */
  readonly hungHeldMeanMs: number | null;
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
  readonly cuts?: CutFigures;
  /** The cut figures of each of the scenario's phases, in order. */
  readonly phaseCuts?: readonly CutFigures[];
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

/**
 * Seconds from the start of `span` to the first step from which every window (cut short at the
 * end of the span) holds; null when even the last one does not.
 */
function settledAfter(outcomes: readonly Outcome[], span: Span, holds: (window: readonly Outcome[]) => boolean): number | null {
  let settled: number | null = null;
  for (let from = span.toMs - stepMs; from >= span.fromMs; from -= stepMs) {
    const window = outcomes.filter(within({ fromMs: from, toMs: Math.min(from + windowMs, span.toMs) }));
    if (window.length > 0 && !holds(window)) break;
    settled = (from - span.fromMs) / 1000;
  }
  return settled;
}

function outageFigures(orders: readonly Outcome[], arrivals: readonly Arrival[], outage: Span, end: number): OutageFigures {
  const during = orders.filter(within(outage));
  const failFastS = settledAfter(during, outage, (window) => percentile(sortedLatencies(window), 0.9) <= fastMs);
  const refusals =
    failFastS === null ? [] : during.filter((o) => o.t >= outage.fromMs + failFastS * 1000 && !succeeded(o) && o.by === 'proxy');
  const circuitOpen = during.filter((o) => o.reason === 'circuit_open' && o.attempts === 0);
  const recoverS = settledAfter(orders, { fromMs: outage.toMs, toMs: end }, (window) => successShare(window) >= recoveredShare);
  return {
    failFastS,
    refusalP99Ms: refusals.length === 0 ? null : percentile(sortedLatencies(refusals), 0.99),
    circuitOpenP99Ms: circuitOpen.length === 0 ? null : percentile(sortedLatencies(circuitOpen), 0.99),
    recoverS,
    amplification: arrivals.filter(within(outage)).length / Math.max(1, during.length),
  };
}

function neighbourFigures(outcomes: readonly Outcome[], neighbour: NonNullable<Scenario['neighbour']>): NeighbourFigures {
  const service = outcomes.filter((o) => o.service === (neighbour.service ?? 'catalog'));
  const baseline = service.filter(within(neighbour.baseline));
  const fault = service.filter(within(neighbour.fault));
  const baselineP99Ms = percentile(sortedLatencies(baseline), 0.99);
  const faultP99Ms = percentile(sortedLatencies(fault), 0.99);
  return { baselineP99Ms, faultP99Ms, ratio: faultP99Ms / baselineP99Ms, faultSuccess: successShare(fault) };
}

function cutFigures(arrivals: readonly Arrival[]): CutFigures {
  const healthy = arrivals.filter((a) => a.stalled !== true);
  const hung = arrivals.filter((a) => a.stalled === true);
  const held = hung.flatMap((a) => (a.leftAfterMs === undefined ? [] : [a.leftAfterMs])).sort((a, b) => a - b);
  return {
    healthyCut: healthy.filter((a) => a.leftAfterMs !== undefined).length,
    healthy: healthy.length,
    hung: hung.length,
    hungHeldP50Ms: held.length === 0 ? null : percentile(held, 0.5),
    hungHeldP99Ms: held.length === 0 ? null : percentile(held, 0.99),
    hungHeldMeanMs: held.length === 0 ? null : held.reduce((sum, ms) => sum + ms, 0) / held.length,
  };
}

/**
 * p99 of the time Breakwater itself took to refuse requests while the breaker was open, from
 * its access log (JSON lines: `reason`, `attempts`, `durationMs`); null when it refused none.
 * Beside the client's figure, it tells Breakwater's share from the machine's.
 */
export function ownRefusalP99Ms(accessLog: string): number | null {
  const durations: number[] = [];
  for (const line of accessLog.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { reason?: unknown; attempts?: unknown; durationMs?: unknown };
    if (entry.reason === 'circuit_open' && entry.attempts === 0 && typeof entry.durationMs === 'number') durations.push(entry.durationMs);
  }
  return durations.length === 0 ? null : percentile(durations.sort((a, b) => a - b), 0.99);
}

/** The figures of one run. `ordersArrivals`: every request the orders replicas received. */
export function analyse(scenario: Scenario, outcomes: readonly Outcome[], ordersArrivals: readonly Arrival[]): RunFigures {
  const orders = outcomes.filter((o) => o.service === 'orders');
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
    ...(scenario.neighbour === undefined ? {} : { neighbour: neighbourFigures(outcomes, scenario.neighbour) }),
    ...(scenario.cutAttempts === undefined ? {} : { cuts: cutFigures(ordersArrivals.filter(within(scenario.measured))) }),
    ...(scenario.cutAttempts === undefined || scenario.phases === undefined
      ? {}
      : { phaseCuts: scenario.phases.map((phase) => cutFigures(ordersArrivals.filter(within(phase.span)))) }),
    series: bins(orders, { fromMs: 0, toMs: scenario.durationMs }, chartBinMs),
  };
}
