import { describe, expect, it } from 'vitest';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { BreakerRegistry, routeBreakerName } from '../../../src/policies/breaker/registry.ts';
import type { CircuitBreaker } from '../../../src/policies/breaker/state.ts';
import { breakerConfig, failed, ok, slow } from './breaker-config.ts';

function registry(): { breakers: BreakerRegistry; events: PolicyEvent[] } {
  const events: PolicyEvent[] = [];
  return { breakers: new BreakerRegistry({ emit: (event) => events.push(event) }), events };
}

function trip(breaker: CircuitBreaker, now: number): void {
  for (let i = 0; i < 4; i++) breaker.record(now, failed, breaker.admit(now));
}

describe('breaker registry', () => {
  it('names a route breaker so it cannot clash with an upstream and stays URL-safe', () => {
    expect(routeBreakerName('charge')).toBe('route:charge');
    expect(encodeURIComponent('charge')).toBe('charge');
  });

  it('gives back the running breaker for the same name, upstream and config, state included', () => {
    const { breakers } = registry();
    const first = breakers.get('payments', 'payments', breakerConfig());
    trip(first, 1_000);

    // A reload builds the same route again, with an equal (not identical) config.
    const again = breakers.get('payments', 'payments', breakerConfig({ failOn: ['timeout', 'reset', 'connect-failure', '5xx', 'reset'] }));

    expect(again).toBe(first);
    expect(again.stateAt(1_000).kind).toBe('open');
  });

  it('starts a fresh, closed breaker when the config changes, and reports that it closed', () => {
    const { breakers, events } = registry();
    const first = breakers.get('payments', 'payments', breakerConfig());
    trip(first, 1_000);

    const changed = breakers.get('payments', 'payments', breakerConfig({ failureRate: 0.9 }));

    expect(changed).not.toBe(first);
    expect(changed.stateAt(1_000)).toEqual({ kind: 'closed' });
    expect(changed.rates(1_000).calls).toBe(0);
    expect(events.at(-1)).toEqual({ type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'open', to: 'closed' });
  });

  it('treats every field of the config as part of its identity', () => {
    const { breakers } = registry();
    const changes = [
      { windowMs: 5_000 },
      { minRequests: 5 },
      { failureRate: 0.6 },
      { slowCallDurationMs: 2_000 },
      { slowCallRate: 0.5 },
      { openForMs: 10_000 },
      { openForMaxMs: 60_000 },
      { halfOpenRequests: 3 },
      { failOn: ['5xx'] as const },
      { failOn: ['5xx', '5xx', 'reset', 'timeout'] as const },
    ];
    const base = breakers.get('payments', 'payments', breakerConfig());

    for (const change of changes) {
      expect(breakers.get('payments', 'payments', breakerConfig(change)), JSON.stringify(change)).not.toBe(base);
      breakers.get('payments', 'payments', breakerConfig());
    }
  });

  it('starts a fresh breaker when a route breaker now guards another upstream', () => {
    const { breakers } = registry();
    const first = breakers.get('route:charge', 'payments', breakerConfig());

    expect(breakers.get('route:charge', 'payments-dr', breakerConfig())).not.toBe(first);
  });

  it('keeps the mode an operator set across a config change, without a transition', () => {
    const { breakers, events } = registry();
    breakers.get('payments', 'payments', breakerConfig());
    breakers.setMode('payments', 'forced-open');
    events.length = 0;

    const changed = breakers.get('payments', 'payments', breakerConfig({ openForMs: 5_000 }));

    expect(changed.mode).toBe('forced-open');
    expect(changed.admit(1_000).verdict).toBe('reject');
    expect(events).toEqual([]);
  });

  it('emits transitions with the breaker and upstream names, and none from a breaker it replaced', () => {
    const { breakers, events } = registry();
    const old = breakers.get('route:charge', 'payments', breakerConfig());
    const stillRunning = old.admit(1_000);
    trip(old, 1_000);
    expect(events).toEqual([{ type: 'breaker-transition', breaker: 'route:charge', upstream: 'payments', from: 'closed', to: 'open' }]);

    breakers.get('route:charge', 'payments', breakerConfig({ minRequests: 10 }));
    events.length = 0;
    // A request that started under the old config still reports to the old breaker.
    old.setMode('disabled');
    old.record(1_000, ok, stillRunning);

    expect(events).toEqual([]);
  });

  it('forgets breakers no longer in use', () => {
    const { breakers } = registry();
    breakers.get('payments', 'payments', breakerConfig());
    breakers.get('route:charge', 'payments', breakerConfig());

    breakers.retain(['payments']);

    expect(breakers.snapshot(0).map((row) => row.name)).toEqual(['payments']);
    expect(breakers.setMode('route:charge', 'forced-open')).toBe(false);
  });

  it('sets a mode by name, and says when the name is unknown', () => {
    const { breakers, events } = registry();
    const breaker = breakers.get('payments', 'payments', breakerConfig());

    expect(breakers.setMode('payments', 'disabled')).toBe(true);
    expect(breakers.setMode('inventory', 'disabled')).toBe(false);

    expect(breaker.mode).toBe('disabled');
    expect(events).toEqual([{ type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'closed', to: 'disabled' }]);
  });

  it('shows every breaker, sorted by name, with its window and state details', () => {
    const { breakers } = registry();
    const payments = breakers.get('payments', 'payments', breakerConfig({ halfOpenRequests: 3 }));
    const charge = breakers.get('route:charge', 'payments', breakerConfig());
    const catalog = breakers.get('catalog', 'catalog', breakerConfig());
    payments.record(1_000, slow, payments.admit(1_000));
    payments.record(1_000, ok, payments.admit(1_000));
    trip(payments, 1_000);
    trip(charge, 2_000);
    breakers.setMode('catalog', 'forced-open');
    expect(catalog.mode).toBe('forced-open');

    const rows = breakers.snapshot(5_000);

    expect(rows).toEqual([
      { name: 'catalog', upstream: 'catalog', state: 'forced-open', mode: 'forced-open', calls: 0, failureRate: 0, slowRate: 0, consecutiveOpens: 0, retryInMs: null, probes: null },
      // A slow call, a good one, then two failures: 2 of 4 failed opened it at 1s, until 31s.
      // The window still holds those calls 4s later.
      { name: 'payments', upstream: 'payments', state: 'open', mode: 'auto', calls: 4, failureRate: 0.5, slowRate: 0.25, consecutiveOpens: 1, retryInMs: 26_000, probes: null },
      { name: 'route:charge', upstream: 'payments', state: 'open', mode: 'auto', calls: 4, failureRate: 1, slowRate: 0, consecutiveOpens: 1, retryInMs: 27_000, probes: null },
    ]);
  });

  it('shows a half-open breaker with its probes, once retryAt has come', () => {
    const { breakers, events } = registry();
    const payments = breakers.get('payments', 'payments', breakerConfig({ halfOpenRequests: 3 }));
    trip(payments, 1_000);
    const probe = payments.admit(31_000);
    payments.record(31_100, ok, probe);
    payments.admit(31_200);

    expect(breakers.snapshot(31_200)).toMatchObject([
      {
        name: 'payments',
        state: 'half-open',
        consecutiveOpens: 1,
        retryInMs: null,
        probes: { inFlight: 1, succeeded: 1, required: 3 },
      },
    ]);
    expect(events.map((event) => event.type === 'breaker-transition' && `${event.from}>${event.to}`)).toEqual(['closed>open', 'open>half-open']);
  });
});
