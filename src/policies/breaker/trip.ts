// When to open: the trip rule, kept apart from the state machine (state.ts) that decides what
// opening means. The state machine asks one question of it, "should I open now?", and starts
// it afresh each time the breaker closes.

import { SlidingWindow, type JudgedCall, type WindowRates } from './window.ts';

export interface TripRule {
  /** Counts a call made while closed; true when the breaker should open. */
  record(now: number, call: JudgedCall): boolean;
  /** True when the call counts against the upstream: a half-open probe must not have one. */
  isBad(call: JudgedCall): boolean;
  rates(now: number): WindowRates;
  /** Forgets every call, for a breaker that has just closed. */
  reset(): void;
}

export interface RateThresholds {
  readonly windowMs: number;
  /** No decision while the window holds fewer calls. */
  readonly minRequests: number;
  /** Open at or above this share of failed calls. */
  readonly failureRate: number;
  /** Open at or above this share of slow calls; 1 (or more) turns slow-call tripping off. */
  readonly slowCallRate: number;
}

/**
 * Resilience4j's time-based rule: over a sliding window, open when enough calls were made and
 * the failure rate or the slow-call rate reached its threshold.
 */
export class RateTripRule implements TripRule {
  readonly #thresholds: RateThresholds;
  readonly #window: SlidingWindow;
  // The contract reads "1.0 = off": at 1.0 even a window of nothing but slow calls stays closed.
  readonly #slowCallsTrip: boolean;

  constructor(thresholds: RateThresholds) {
    this.#thresholds = thresholds;
    this.#window = new SlidingWindow(thresholds.windowMs);
    this.#slowCallsTrip = thresholds.slowCallRate < 1;
  }

  record(now: number, call: JudgedCall): boolean {
    this.#window.record(now, call);
    // Checked after every call, successes included: the call that reaches minRequests may be a
    // success in a window that is already failing.
    const rates = this.#window.rates(now);
    if (rates.calls < this.#thresholds.minRequests) return false;
    return rates.failureRate >= this.#thresholds.failureRate || (this.#slowCallsTrip && rates.slowRate >= this.#thresholds.slowCallRate);
  }

  isBad(call: JudgedCall): boolean {
    return call.failed || (this.#slowCallsTrip && call.slow);
  }

  rates(now: number): WindowRates {
    return this.#window.rates(now);
  }

  reset(): void {
    this.#window.reset();
  }
}
