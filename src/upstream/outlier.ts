// Outlier detection: which of an upstream's endpoints the balancer may pick now. The detector
// is told each attempt's outcome on each endpoint and ejects an endpoint that fails too often
// in a row, fails too large a share of its attempts, or answers much slower than the others.
// An ejected endpoint gets no new attempts until its time is up; it then takes traffic again
// on probation, where one failure ejects it again at once, for longer.
//
// Pure: it is told the time and given its randomness, sets no timers (an ejection ends when
// the next pick or reader looks after its end), and reports each ejection and return through
// a callback so its owner can emit events.

import type { OutlierDetectionConfig } from '../config/types.ts';
import type { EjectionReason } from '../exchange/events.ts';
import { SlidingWindow } from '../policies/breaker/window.ts';
import type { Random } from '../runtime/random.ts';
import { LatencyWindow } from '../policies/deadline/latency.ts';

export type { EjectionReason };

/** Each ejection lasts its computed time, give or take this share, so ejected endpoints do not all return at once. */
export const ejectionJitter = 0.15;

export type EndpointHealth =
  | { readonly kind: 'active' }
  | {
      readonly kind: 'ejected';
      readonly reason: EjectionReason;
      /** Monotonic ms. */
      readonly since: number;
      /** Monotonic ms from which the endpoint takes traffic again. */
      readonly until: number;
    };

export type OutlierChange =
  | {
      readonly kind: 'ejected';
      readonly endpoint: string;
      readonly reason: EjectionReason;
      readonly durationMs: number;
      /** Ejections in a row, this one included; each lengthens the next. */
      readonly ejections: number;
    }
  | { readonly kind: 'returned'; readonly endpoint: string };

/** One attempt's outcome as the detector judges it. */
export interface JudgedAttempt {
  /** A failure as the upstream's failOn defines it. */
  readonly failed: boolean;
  /** How long the attempt waited for its response head (or until it timed out); absent when it failed without waiting. */
  readonly latencyMs?: number | undefined;
  /** Monotonic ms the attempt was sent at. */
  readonly startedAt: number;
}

const active: EndpointHealth = { kind: 'active' };

class EndpointRecord {
  health: EndpointHealth = active;
  consecutiveFailures = 0;
  /** Ejections in a row: the multiplier of the next ejection's time. */
  ejections = 0;
  /** When the endpoint last came back from an ejection. */
  returnedAt = Number.NEGATIVE_INFINITY;
  /** Back from an ejection and not yet answered well: one failure ejects it again. */
  probation = false;
  lastReason: EjectionReason = 'consecutive';
  readonly failures: SlidingWindow | undefined;
  /** Replaced, not emptied, when the endpoint is ejected. */
  latencies: LatencyWindow | undefined;

  constructor(config: OutlierDetectionConfig) {
    this.failures = config.failureRate === undefined ? undefined : new SlidingWindow(config.failureRate.windowMs);
    this.latencies = config.latency === undefined ? undefined : new LatencyWindow(config.latency.windowMs);
  }
}

export class OutlierDetector {
  readonly config: OutlierDetectionConfig;
  readonly #random: Random;
  readonly #onChange: (change: OutlierChange) => void;
  readonly #endpoints = new Map<string, EndpointRecord>();
  #ejectedCount = 0;
  /** The earliest end of an ejection; nothing to settle before it. */
  #nextReturnAt = Number.POSITIVE_INFINITY;
  #nextLatencyCheckAt = Number.NEGATIVE_INFINITY;
  #version = 0;

  constructor(config: OutlierDetectionConfig, random: Random, onChange: (change: OutlierChange) => void = () => undefined) {
    this.config = config;
    this.#random = random;
    this.#onChange = onChange;
  }

  /** Changes whenever an endpoint is ejected or returns, so a reader can cache what it derives. */
  get version(): number {
    return this.#version;
  }

  /**
   * The endpoints to judge: new ones start active, missing ones are forgotten. Should every
   * endpoint left be ejected, the one due back first returns now: an upstream keeps at least
   * one endpoint to send to.
   */
  setEndpoints(keys: Iterable<string>, now: number): void {
    const wanted = new Set(keys);
    for (const key of [...this.#endpoints.keys()]) {
      if (!wanted.has(key)) this.#endpoints.delete(key);
    }
    for (const key of wanted) {
      if (!this.#endpoints.has(key)) this.#endpoints.set(key, new EndpointRecord(this.config));
    }
    this.#recount();
    this.settle(now);
    if (this.#endpoints.size > 0 && this.#ejectedCount === this.#endpoints.size) {
      const [key, record] = [...this.#endpoints].sort(([, a], [, b]) => until(a) - until(b))[0]!;
      this.#return(key, record, now);
    }
  }

  /** Ends the ejections whose time is up as of `now`. */
  settle(now: number): void {
    if (now < this.#nextReturnAt) return;
    for (const [key, record] of this.#endpoints) {
      if (record.health.kind === 'ejected' && record.health.until <= now) this.#return(key, record, record.health.until);
    }
  }

  /** The endpoint's state as of `now`; undefined for an endpoint the detector does not know. */
  health(key: string, now: number): EndpointHealth | undefined {
    this.settle(now);
    return this.#endpoints.get(key)?.health;
  }

  /** True when the endpoint may not be picked as of the last settle(). */
  isEjected(key: string): boolean {
    return this.#endpoints.get(key)?.health.kind === 'ejected';
  }

  /** Counts an attempt's outcome on `key`, and ejects the endpoint (or another, on latency) when a rule says so. */
  record(key: string, attempt: JudgedAttempt, now: number): void {
    this.settle(now);
    const record = this.#endpoints.get(key);
    // An endpoint gone from discovery, or an outcome of an attempt sent before the endpoint's
    // last ejection ended: it says nothing of the endpoint as it is now.
    if (record === undefined || record.health.kind === 'ejected' || attempt.startedAt < record.returnedAt) return;
    record.consecutiveFailures = attempt.failed ? record.consecutiveFailures + 1 : 0;
    record.failures?.record(now, { failed: attempt.failed, slow: false });
    if (attempt.latencyMs !== undefined) record.latencies?.record(attempt.latencyMs, now);

    if (record.probation) {
      if (attempt.failed) {
        this.#eject(key, record, record.lastReason, now);
        return;
      }
      record.probation = false;
    }
    const { consecutiveFailures, failureRate } = this.config;
    if (attempt.failed && consecutiveFailures > 0 && record.consecutiveFailures >= consecutiveFailures) {
      if (this.#eject(key, record, 'consecutive', now)) return;
    }
    if (failureRate !== undefined && record.failures !== undefined) {
      const rates = record.failures.rates(now);
      if (rates.calls >= failureRate.minRequests && rates.failureRate >= failureRate.threshold) {
        if (this.#eject(key, record, 'failure_rate', now)) return;
      }
    }
    this.#checkLatency(now);
  }

  /**
   * The latency rule, checked at most once per tenth of its window: an endpoint whose median
   * latency is above `factor` times the median of the other endpoints' medians is ejected.
   * Only endpoints with `minRequests` latencies in the window are judged or compared with, and
   * the slowest goes first while the ejection cap allows.
   */
  #checkLatency(now: number): void {
    const latency = this.config.latency;
    if (latency === undefined || now < this.#nextLatencyCheckAt) return;
    this.#nextLatencyCheckAt = now + latency.windowMs / 10;
    const medians: { key: string; record: EndpointRecord; median: number }[] = [];
    for (const [key, record] of this.#endpoints) {
      if (record.health.kind === 'ejected' || record.latencies === undefined) continue;
      const { count, value } = record.latencies.quantile(0.5, now);
      if (count >= latency.minRequests) medians.push({ key, record, median: value });
    }
    const outliers = medians
      .map((candidate) => {
        const others = medians.filter((other) => other !== candidate).map((other) => other.median);
        const typical = medianOf(others);
        return { ...candidate, ratio: typical === undefined ? 0 : candidate.median / Math.max(typical, Number.MIN_VALUE) };
      })
      .filter((candidate) => candidate.ratio > latency.factor)
      .sort((a, b) => b.ratio - a.ratio);
    for (const outlier of outliers) this.#eject(outlier.key, outlier.record, 'latency', now);
  }

  /**
   * Ejects unless the cap forbids it: counting this ejection, no more than maxEjectionPercent
   * of the endpoints may be out, and never every one of them. False when it did not happen.
   */
  #eject(key: string, record: EndpointRecord, reason: EjectionReason, now: number): boolean {
    const total = this.#endpoints.size;
    const after = this.#ejectedCount + 1;
    if (after >= total || (after / total) * 100 > this.config.maxEjectionPercent) return false;
    const { baseEjectionTimeMs, maxEjectionTimeMs } = this.config;
    // Each base ejection time spent back in service takes one off the multiplier, so an
    // endpoint that failed long ago is not punished as one that fails again and again.
    const forgiven = record.returnedAt === Number.NEGATIVE_INFINITY ? 0 : Math.floor((now - record.returnedAt) / baseEjectionTimeMs);
    record.ejections = Math.max(0, record.ejections - forgiven) + 1;
    const jitter = 1 + (this.#random() * 2 - 1) * ejectionJitter;
    const durationMs = Math.min(maxEjectionTimeMs, baseEjectionTimeMs * record.ejections * jitter);
    record.health = { kind: 'ejected', reason, since: now, until: now + durationMs };
    record.lastReason = reason;
    record.probation = false;
    // It comes back with a clean slate: what it did before the ejection is what ejected it.
    record.consecutiveFailures = 0;
    record.failures?.reset();
    if (record.latencies !== undefined) record.latencies = new LatencyWindow(record.latencies.windowMs);
    this.#ejectedCount += 1;
    this.#nextReturnAt = Math.min(this.#nextReturnAt, now + durationMs);
    this.#version += 1;
    this.#onChange({ kind: 'ejected', endpoint: key, reason, durationMs, ejections: record.ejections });
    return true;
  }

  #return(key: string, record: EndpointRecord, at: number): void {
    record.health = active;
    record.returnedAt = at;
    record.probation = true;
    this.#recount();
    this.#version += 1;
    this.#onChange({ kind: 'returned', endpoint: key });
  }

  #recount(): void {
    let ejected = 0;
    let next = Number.POSITIVE_INFINITY;
    for (const record of this.#endpoints.values()) {
      if (record.health.kind !== 'ejected') continue;
      ejected += 1;
      next = Math.min(next, record.health.until);
    }
    this.#ejectedCount = ejected;
    this.#nextReturnAt = next;
  }
}

function until(record: EndpointRecord): number {
  return record.health.kind === 'ejected' ? record.health.until : Number.NEGATIVE_INFINITY;
}

function medianOf(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
