// The breakers of the running config, kept across reloads so a reload does not close an open
// breaker or forget its statistics. It is also what GET /circuits, POST /circuits/NAME and the
// state gauge read.

import type { CircuitBreakerConfig } from '../../config/types.ts';
import type { BreakerStateName, PolicyEvents } from '../../exchange/events.ts';
import { CircuitBreaker, type BreakerMode } from './state.ts';

/** One breaker as /circuits shows it. */
export interface CircuitRow {
  readonly name: string;
  readonly upstream: string;
  /** The manual mode when one is set, else closed, open or half-open. */
  readonly state: BreakerStateName;
  readonly mode: BreakerMode;
  /** Calls in the sliding window, and the shares of them that failed or were slow. */
  readonly calls: number;
  readonly failureRate: number;
  readonly slowRate: number;
  /** Opens since the breaker last closed (each doubles openFor up to openForMax); 0 when closed. */
  readonly consecutiveOpens: number;
  /** While open: ms until calls are let through as probes. */
  readonly retryInMs: number | null;
  /** While half-open: probes out, probes that succeeded, and successes needed to close. */
  readonly probes: { readonly inFlight: number; readonly succeeded: number; readonly required: number } | null;
}

/** The name of a route's own breaker. Upstream names cannot hold ":", so the two never clash. */
export function routeBreakerName(route: string): string {
  return `route:${route}`;
}

export class BreakerRegistry {
  readonly #events: PolicyEvents;
  readonly #breakers = new Map<string, CircuitBreaker>();

  constructor(events: PolicyEvents) {
    this.#events = events;
  }

  /**
   * The breaker called `name`: an upstream's name for the breaker its routes share, or
   * routeBreakerName(route) for a route with a block of its own. The same name, upstream and
   * config give back the running breaker, state and statistics included; a change gives a fresh,
   * closed one that keeps the mode an operator set.
   */
  get(name: string, upstream: string, config: CircuitBreakerConfig): CircuitBreaker {
    const existing = this.#breakers.get(name);
    if (existing !== undefined && existing.upstream === upstream && sameConfig(existing.config, config)) return existing;
    const breaker: CircuitBreaker = new CircuitBreaker({
      name,
      upstream,
      config,
      // An operator's choice outlives a config change; the statistics do not.
      ...(existing === undefined ? {} : { mode: existing.mode }),
      onTransition: (from, to) => {
        // A replaced breaker may still see calls admitted before the reload; they change it,
        // but its state is no longer anyone's to report.
        if (this.#breakers.get(name) === breaker) this.#events.emit({ type: 'breaker-transition', breaker: name, upstream, from, to });
      },
    });
    this.#breakers.set(name, breaker);
    // A replaced open breaker is now closed: say so, or the transitions would not add up.
    if (existing !== undefined && existing.stateName !== breaker.stateName) {
      this.#events.emit({ type: 'breaker-transition', breaker: name, upstream, from: existing.stateName, to: breaker.stateName });
    }
    return breaker;
  }

  /** Forgets the breakers no route uses any more. */
  retain(names: Iterable<string>): void {
    const kept = new Set(names);
    for (const name of this.#breakers.keys()) {
      if (!kept.has(name)) this.#breakers.delete(name);
    }
  }

  /** Every breaker, by name. */
  snapshot(now: number): CircuitRow[] {
    return [...this.#breakers.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((breaker) => row(breaker, now));
  }

  /** Sets a breaker's manual mode; false when no breaker has that name. */
  setMode(name: string, mode: BreakerMode): boolean {
    const breaker = this.#breakers.get(name);
    if (breaker === undefined) return false;
    breaker.setMode(mode);
    return true;
  }
}

function row(breaker: CircuitBreaker, now: number): CircuitRow {
  const state = breaker.stateAt(now);
  const rates = breaker.rates(now);
  return {
    name: breaker.name,
    upstream: breaker.upstream,
    state: breaker.stateNameAt(now),
    mode: breaker.mode,
    calls: rates.calls,
    failureRate: rates.failureRate,
    slowRate: rates.slowRate,
    consecutiveOpens: state.kind === 'closed' ? 0 : state.consecutiveOpens,
    retryInMs: state.kind === 'open' ? Math.max(0, Math.ceil(state.retryAt - now)) : null,
    probes:
      state.kind === 'half-open'
        ? { inFlight: state.probesInFlight, succeeded: state.successes, required: breaker.config.halfOpenRequests }
        : null,
  };
}

function sameConfig(a: CircuitBreakerConfig, b: CircuitBreakerConfig): boolean {
  return (
    a.windowMs === b.windowMs &&
    a.minRequests === b.minRequests &&
    a.failureRate === b.failureRate &&
    a.slowCallDurationMs === b.slowCallDurationMs &&
    a.slowCallRate === b.slowCallRate &&
    a.openForMs === b.openForMs &&
    a.openForMaxMs === b.openForMaxMs &&
    a.halfOpenRequests === b.halfOpenRequests &&
    // failOn is a set: its order and repeats do not change what counts as a failure.
    a.failOn.every((kind) => b.failOn.includes(kind)) &&
    b.failOn.every((kind) => a.failOn.includes(kind))
  );
}
