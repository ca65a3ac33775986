// The circuit breaker's state machine: closed → open → half-open → closed (or open again), plus
// the manual modes an operator sets from the admin port. Pure: it is told the time, sets no
// timers (open becomes half-open when the next call or reader looks after `retryAt`), and
// reports each change through a callback so the layer's owner can emit events.

import type { CircuitBreakerConfig } from '../../config/types.ts';
import type { BreakerStateName } from '../../exchange/events.ts';
import { RateTripRule, type TripRule } from './trip.ts';
import type { JudgedCall, WindowRates } from './window.ts';

export type BreakerState =
  | { readonly kind: 'closed' }
  | {
      readonly kind: 'open';
      readonly openedAt: number;
      /** Monotonic ms from which calls are let through as probes. */
      readonly retryAt: number;
      /** Opens since the breaker last closed, this one included; each doubles openFor. */
      readonly consecutiveOpens: number;
    }
  | {
      readonly kind: 'half-open';
      readonly probesInFlight: number;
      readonly successes: number;
      readonly consecutiveOpens: number;
    };

/** `auto` follows the state machine; the other two are Resilience4j's FORCED_OPEN and DISABLED. */
export type BreakerMode = 'auto' | 'forced-open' | 'disabled';

/**
 * What admit() decided. A call let through carries the period it was admitted in (a period
 * ends at every change of state or mode), so a call that outlives its period, such as a slow
 * probe still out when another probe reopened the breaker, is not counted in the next one.
 */
export type Admission = { readonly verdict: 'allow' | 'probe'; readonly period: number } | { readonly verdict: 'reject' };

export type TransitionListener = (from: BreakerStateName, to: BreakerStateName) => void;

export interface CircuitBreakerOptions {
  /** `payments` for an upstream's shared breaker, `route:<route>` for a route's own. */
  readonly name: string;
  readonly upstream: string;
  readonly config: CircuitBreakerConfig;
  readonly onTransition?: TransitionListener;
  /** The manual mode to start in; `auto` by default. */
  readonly mode?: BreakerMode;
  /** When to open; by default the failure- and slow-call-rate rule of `config`. */
  readonly rule?: TripRule;
}

const closed: BreakerState = { kind: 'closed' };
const rejected: Admission = { verdict: 'reject' };

export class CircuitBreaker {
  readonly name: string;
  readonly upstream: string;
  readonly config: CircuitBreakerConfig;
  readonly #rule: TripRule;
  readonly #onTransition: TransitionListener;
  #state: BreakerState = closed;
  #mode: BreakerMode;
  #period = 0;
  // One admission object per period, so letting a call through allocates nothing.
  #allowed: Admission = { verdict: 'allow', period: 0 };
  #probe: Admission = { verdict: 'probe', period: 0 };

  constructor(options: CircuitBreakerOptions) {
    this.name = options.name;
    this.upstream = options.upstream;
    this.config = options.config;
    this.#rule = options.rule ?? new RateTripRule(options.config);
    this.#onTransition = options.onTransition ?? (() => undefined);
    this.#mode = options.mode ?? 'auto';
  }

  get mode(): BreakerMode {
    return this.#mode;
  }

  /** The automatic state as of `now` (open turns half-open once `retryAt` has come). */
  stateAt(now: number): BreakerState {
    this.#settle(now);
    return this.#state;
  }

  /**
   * The state a user sees: the manual mode when one is set, else the automatic state, as of
   * the last change reported (an open breaker past `retryAt` reads open until settled).
   */
  get stateName(): BreakerStateName {
    return this.#mode === 'auto' ? this.#state.kind : this.#mode;
  }

  /** The state a user sees as of `now`. */
  stateNameAt(now: number): BreakerStateName {
    this.#settle(now);
    return this.stateName;
  }

  rates(now: number): WindowRates {
    return this.#rule.rates(now);
  }

  /** Decides whether a call may go to the upstream now. */
  admit(now: number): Admission {
    if (this.#mode === 'forced-open') return rejected;
    if (this.#mode === 'disabled') return this.#allowed;
    this.#settle(now);
    const state = this.#state;
    switch (state.kind) {
      case 'closed':
        return this.#allowed;
      case 'open':
        return rejected;
      case 'half-open':
        if (state.probesInFlight + state.successes >= this.config.halfOpenRequests) return rejected;
        this.#state = { ...state, probesInFlight: state.probesInFlight + 1 };
        return this.#probe;
    }
  }

  /** Counts the outcome of a call admit() let through. */
  record(now: number, call: JudgedCall, admission: Admission): void {
    if (!this.#current(admission)) return;
    const state = this.#state;
    if (state.kind === 'half-open') {
      if (this.#rule.isBad(call)) {
        this.#open(now, state.consecutiveOpens + 1);
      } else if (state.successes + 1 >= this.config.halfOpenRequests) {
        this.#close();
      } else {
        this.#state = { ...state, probesInFlight: state.probesInFlight - 1, successes: state.successes + 1 };
      }
      return;
    }
    // Not half-open, and an open breaker admits nothing: a call of the current period is a
    // call made while closed.
    if (this.#rule.record(now, call)) this.#open(now, 1);
  }

  /** A call admit() let through ended without an outcome to judge (cancelled): frees its probe slot. */
  release(admission: Admission): void {
    const state = this.#state;
    // Only half-open breakers admit probes, and a closed one has no slots to free.
    if (!this.#current(admission) || state.kind !== 'half-open') return;
    this.#state = { ...state, probesInFlight: state.probesInFlight - 1 };
  }

  /**
   * True when a call made now would be refused: open, forced open, or half-open with every
   * probe slot taken. Changes nothing, so a retry layer can ask before it waits.
   */
  isOpen(now: number): boolean {
    if (this.#mode !== 'auto') return this.#mode === 'forced-open';
    const state = this.#state;
    switch (state.kind) {
      case 'closed':
        return false;
      case 'open':
        return now < state.retryAt;
      case 'half-open':
        return state.probesInFlight + state.successes >= this.config.halfOpenRequests;
    }
  }

  /**
   * Sets the manual mode. Back to `auto`, the breaker starts closed with fresh statistics, as
   * Resilience4j's reset does; setting the mode it already has changes nothing.
   */
  setMode(mode: BreakerMode): void {
    if (mode === this.#mode) return;
    const from = this.stateName;
    this.#mode = mode;
    if (mode === 'auto') {
      this.#state = closed;
      this.#rule.reset();
    }
    this.#changed(from);
  }

  #current(admission: Admission): boolean {
    return admission.verdict !== 'reject' && admission.period === this.#period && this.#mode === 'auto';
  }

  #settle(now: number): void {
    const state = this.#state;
    if (this.#mode !== 'auto' || state.kind !== 'open' || now < state.retryAt) return;
    this.#state = { kind: 'half-open', probesInFlight: 0, successes: 0, consecutiveOpens: state.consecutiveOpens };
    this.#changed('open');
  }

  #open(now: number, consecutiveOpens: number): void {
    const from = this.stateName;
    const openForMs = Math.min(this.config.openForMaxMs, this.config.openForMs * 2 ** (consecutiveOpens - 1));
    this.#state = { kind: 'open', openedAt: now, retryAt: now + openForMs, consecutiveOpens };
    this.#changed(from);
  }

  #close(): void {
    this.#state = closed;
    // "A breaker's statistics start afresh each time it closes."
    this.#rule.reset();
    this.#changed('half-open');
  }

  #changed(from: BreakerStateName): void {
    this.#period += 1;
    this.#allowed = { verdict: 'allow', period: this.#period };
    this.#probe = { verdict: 'probe', period: this.#period };
    this.#onTransition(from, this.stateName);
  }
}
