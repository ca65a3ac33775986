import { describe, expect, it } from 'vitest';
import type { CircuitBreakerConfig } from '../../../src/config/types.ts';
import type { BreakerStateName } from '../../../src/exchange/events.ts';
import { CircuitBreaker, type Admission } from '../../../src/policies/breaker/state.ts';
import type { TripRule } from '../../../src/policies/breaker/trip.ts';
import { breakerConfig, failed, ok, slow } from './breaker-config.ts';

type Transition = readonly [BreakerStateName, BreakerStateName];

function breaker(overrides: Partial<CircuitBreakerConfig> = {}, rule?: TripRule): { breaker: CircuitBreaker; transitions: Transition[] } {
  const transitions: Transition[] = [];
  const made = new CircuitBreaker({
    name: 'payments',
    upstream: 'payments',
    config: breakerConfig(overrides),
    onTransition: (from, to) => transitions.push([from, to]),
    ...(rule === undefined ? {} : { rule }),
  });
  return { breaker: made, transitions };
}

/** Admits a call at `now` and records its outcome at once. */
function call(subject: CircuitBreaker, now: number, outcome: { failed: boolean; slow: boolean }): Admission {
  const admission = subject.admit(now);
  if (admission.verdict !== 'reject') subject.record(now, outcome, admission);
  return admission;
}

/** Opens a breaker with the default test config (4 calls, 50%) at `now`. */
function trip(subject: CircuitBreaker, now: number): void {
  for (let i = 0; i < 4; i++) call(subject, now, failed);
}

describe('circuit breaker: closed', () => {
  it('lets calls through and stays closed below minRequests, however many fail', () => {
    const { breaker: subject, transitions } = breaker();

    for (let i = 0; i < 3; i++) expect(call(subject, 1_000, failed).verdict).toBe('allow');

    expect(subject.stateAt(1_000)).toEqual({ kind: 'closed' });
    expect(subject.isOpen(1_000)).toBe(false);
    expect(transitions).toEqual([]);
  });

  it('has no probe slot to free for a call let through while closed', () => {
    const { breaker: subject } = breaker();
    const admission = subject.admit(1_000);

    subject.release(admission);

    expect(subject.stateAt(1_000)).toEqual({ kind: 'closed' });
    expect(subject.rates(1_000).calls).toBe(0);
  });

  it('takes no outcome for a call it refused', () => {
    const { breaker: subject } = breaker();
    trip(subject, 1_000);
    const refused = subject.admit(1_000);

    subject.record(1_000, failed, refused);
    subject.release(refused);

    expect(subject.stateAt(1_000)).toMatchObject({ kind: 'open', consecutiveOpens: 1 });
  });

  it('opens at the failure threshold, for openFor, and reports the transition', () => {
    const { breaker: subject, transitions } = breaker();

    call(subject, 1_000, ok);
    call(subject, 1_000, failed);
    call(subject, 1_000, ok);
    call(subject, 2_000, failed);

    expect(subject.stateAt(2_000)).toEqual({ kind: 'open', openedAt: 2_000, retryAt: 32_000, consecutiveOpens: 1 });
    expect(transitions).toEqual([['closed', 'open']]);
  });

  it('opens on the slow-call rate when one is set', () => {
    const { breaker: subject } = breaker({ slowCallRate: 0.5 });

    for (let i = 0; i < 4; i++) call(subject, 1_000, i % 2 === 0 ? slow : ok);

    expect(subject.stateAt(1_000).kind).toBe('open');
  });
});

describe('circuit breaker: open', () => {
  it('refuses every call until openFor has passed', () => {
    const { breaker: subject } = breaker();
    trip(subject, 1_000);

    expect(subject.admit(1_000).verdict).toBe('reject');
    expect(subject.admit(30_999).verdict).toBe('reject');
    expect(subject.isOpen(30_999)).toBe(true);
  });

  it('turns half-open at retryAt and lets the first call through as a probe', () => {
    const { breaker: subject, transitions } = breaker();
    trip(subject, 1_000);

    // Nothing is running when retryAt comes: the breaker is no longer refusing.
    expect(subject.isOpen(31_000)).toBe(false);
    expect(subject.admit(31_000).verdict).toBe('probe');

    expect(subject.stateAt(31_000)).toEqual({ kind: 'half-open', probesInFlight: 1, successes: 0, consecutiveOpens: 1 });
    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
    ]);
  });

  it('shows half-open to a reader after retryAt even with no call made', () => {
    const { breaker: subject, transitions } = breaker();
    trip(subject, 1_000);

    expect(subject.stateName).toBe('open');
    expect(subject.stateNameAt(31_000)).toBe('half-open');
    expect(transitions.at(-1)).toEqual(['open', 'half-open']);
  });

  it('ignores the late outcome of a call let through before it opened', () => {
    const { breaker: subject } = breaker();
    const early = subject.admit(1_000);
    trip(subject, 1_000);

    subject.record(1_500, ok, early);
    subject.release(early);

    expect(subject.stateAt(1_500)).toMatchObject({ kind: 'open', retryAt: 31_000 });
  });
});

describe('circuit breaker: half-open', () => {
  function halfOpen(overrides: Partial<CircuitBreakerConfig> = {}): ReturnType<typeof breaker> {
    const made = breaker(overrides);
    trip(made.breaker, 1_000);
    made.breaker.stateAt(31_000);
    return made;
  }

  it('lets only halfOpenRequests probes through at once; the rest are refused', () => {
    const { breaker: subject } = halfOpen({ halfOpenRequests: 2 });

    expect(subject.admit(31_000).verdict).toBe('probe');
    expect(subject.isOpen(31_000)).toBe(false);
    expect(subject.admit(31_000).verdict).toBe('probe');

    expect(subject.isOpen(31_000)).toBe(true);
    expect(subject.admit(31_001).verdict).toBe('reject');
  });

  it('does not let more probes through after some succeeded: the count is per half-open period', () => {
    const { breaker: subject } = halfOpen({ halfOpenRequests: 3 });
    const first = subject.admit(31_000);
    subject.record(31_010, ok, first);
    subject.admit(31_020);
    subject.admit(31_030);

    expect(subject.admit(31_040).verdict).toBe('reject');
    expect(subject.stateAt(31_040)).toEqual({ kind: 'half-open', probesInFlight: 2, successes: 1, consecutiveOpens: 1 });
  });

  it('closes with fresh statistics once every probe succeeded', () => {
    const { breaker: subject, transitions } = halfOpen();
    const probes = [subject.admit(31_000), subject.admit(31_000)];

    subject.record(31_100, ok, probes[0]!);
    expect(subject.stateAt(31_100).kind).toBe('half-open');
    subject.record(31_200, ok, probes[1]!);

    expect(subject.stateAt(31_200)).toEqual({ kind: 'closed' });
    expect(subject.rates(31_200).calls).toBe(0);
    expect(transitions.at(-1)).toEqual(['half-open', 'closed']);
    // The four failures that opened it are forgotten: three more do not reopen it.
    for (let i = 0; i < 3; i++) call(subject, 31_300, failed);
    expect(subject.stateAt(31_300).kind).toBe('closed');
  });

  it('reopens on a failed probe, doubling openFor each consecutive time up to openForMax', () => {
    const { breaker: subject, transitions } = breaker({ openForMs: 1_000, openForMaxMs: 5_000 });
    trip(subject, 0);
    const retryAts: number[] = [];
    let now = 0;
    for (let open = 0; open < 4; open++) {
      const state = subject.stateAt(now);
      if (state.kind !== 'open') throw new Error(`expected open, got ${state.kind}`);
      retryAts.push(state.retryAt - state.openedAt);
      now = state.retryAt;
      call(subject, now, failed);
    }

    // 1s, then doubled to 2s and 4s, then capped at 5s.
    expect(retryAts).toEqual([1_000, 2_000, 4_000, 5_000]);
    expect(subject.stateAt(now)).toMatchObject({ kind: 'open', consecutiveOpens: 5, retryAt: now + 5_000 });
    expect(transitions.slice(0, 3)).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'open'],
    ]);
  });

  it('starts openFor over at its base after the breaker has closed', () => {
    const { breaker: subject } = breaker({ openForMs: 1_000, openForMaxMs: 60_000 });
    trip(subject, 0);
    call(subject, 1_000, failed); // reopens for 2s
    call(subject, 3_000, ok);
    call(subject, 3_000, ok); // closes

    trip(subject, 4_000);

    expect(subject.stateAt(4_000)).toMatchObject({ kind: 'open', retryAt: 5_000, consecutiveOpens: 1 });
  });

  it('counts a slow probe as a failure when slow calls can open the breaker', () => {
    const { breaker: subject } = halfOpen({ slowCallRate: 0.5 });

    call(subject, 31_000, slow);

    expect(subject.stateAt(31_000)).toMatchObject({ kind: 'open', consecutiveOpens: 2 });
  });

  it('frees the slot of a probe that was cancelled', () => {
    const { breaker: subject } = halfOpen({ halfOpenRequests: 1 });
    const cancelled = subject.admit(31_000);
    expect(subject.admit(31_000).verdict).toBe('reject');

    subject.release(cancelled);

    expect(subject.stateAt(31_000)).toMatchObject({ kind: 'half-open', probesInFlight: 0, successes: 0 });
    expect(subject.admit(31_000).verdict).toBe('probe');
  });

  it('does not count a probe from an earlier half-open period in the next one', () => {
    const { breaker: subject } = halfOpen({ halfOpenRequests: 2 });
    // Two probes go out; the second fails fast and reopens the breaker for 60s (openFor doubled).
    const slowProbe = subject.admit(31_000);
    const fastProbe = subject.admit(31_000);
    subject.record(31_500, failed, fastProbe);
    // At 91.5s the breaker is half-open again and lets a new probe through.
    expect(subject.admit(91_500).verdict).toBe('probe');

    // Only now does the first probe answer, successfully: it speaks for the earlier period.
    subject.record(91_600, ok, slowProbe);
    subject.release(slowProbe);

    expect(subject.stateAt(91_600)).toEqual({ kind: 'half-open', probesInFlight: 1, successes: 0, consecutiveOpens: 2 });
  });

  it('ignores calls that were not admitted as probes of this period', () => {
    const { breaker: subject } = breaker();
    const fromClosed = subject.admit(1_000);
    trip(subject, 1_000);
    subject.stateAt(31_000);

    subject.record(31_000, failed, fromClosed);

    expect(subject.stateAt(31_000).kind).toBe('half-open');
  });
});

describe('circuit breaker: manual modes', () => {
  it('forced-open refuses every call, records nothing, and says so', () => {
    const { breaker: subject, transitions } = breaker();
    const before = subject.admit(1_000);

    subject.setMode('forced-open');
    subject.record(1_000, failed, before);

    expect(subject.admit(1_000).verdict).toBe('reject');
    expect(subject.isOpen(1_000)).toBe(true);
    expect(subject.stateNameAt(1_000)).toBe('forced-open');
    expect(subject.mode).toBe('forced-open');
    expect(subject.rates(1_000).calls).toBe(0);
    expect(transitions).toEqual([['closed', 'forced-open']]);
  });

  it('disabled lets every call through and records nothing, so it never opens', () => {
    const { breaker: subject, transitions } = breaker();

    subject.setMode('disabled');
    for (let i = 0; i < 10; i++) expect(call(subject, 1_000, failed).verdict).toBe('allow');

    expect(subject.isOpen(1_000)).toBe(false);
    expect(subject.rates(1_000).calls).toBe(0);
    expect(subject.stateNameAt(1_000)).toBe('disabled');
    expect(transitions).toEqual([['closed', 'disabled']]);
  });

  it('back to auto starts closed with fresh statistics, whatever state it was in', () => {
    const { breaker: subject, transitions } = breaker();
    call(subject, 1_000, failed);
    call(subject, 1_000, failed);
    trip(subject, 1_000);

    subject.setMode('forced-open');
    subject.setMode('auto');

    expect(subject.stateAt(1_000)).toEqual({ kind: 'closed' });
    expect(subject.rates(1_000).calls).toBe(0);
    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'forced-open'],
      ['forced-open', 'closed'],
    ]);
  });

  it('moves between the manual modes directly, and ignores setting the mode it has', () => {
    const { breaker: subject, transitions } = breaker();

    subject.setMode('auto');
    subject.setMode('forced-open');
    subject.setMode('forced-open');
    subject.setMode('disabled');

    expect(transitions).toEqual([
      ['closed', 'forced-open'],
      ['forced-open', 'disabled'],
    ]);
  });

  it('does not turn half-open while forced open, however long it stays so', () => {
    const { breaker: subject } = breaker();
    trip(subject, 1_000);
    subject.setMode('forced-open');

    expect(subject.admit(100_000).verdict).toBe('reject');
    expect(subject.stateAt(100_000).kind).toBe('open');
  });

  it('can start in a manual mode', () => {
    const subject = new CircuitBreaker({ name: 'route:charge', upstream: 'payments', config: breakerConfig(), mode: 'forced-open' });

    expect(subject.admit(0).verdict).toBe('reject');
    expect(subject.stateName).toBe('forced-open');
  });
});

describe('circuit breaker: trip rule', () => {
  it('opens whenever its trip rule says so (here: the first failure)', () => {
    let resets = 0;
    const firstFailure: TripRule = {
      record: (_now, outcome) => outcome.failed,
      isBad: (outcome) => outcome.failed,
      rates: () => ({ calls: 0, failures: 0, slowCalls: 0, failureRate: 0, slowRate: 0 }),
      reset: () => {
        resets++;
      },
    };
    const subject = new CircuitBreaker({ name: 'payments', upstream: 'payments', config: breakerConfig({ halfOpenRequests: 1 }), rule: firstFailure });

    call(subject, 0, ok);
    expect(subject.stateAt(0).kind).toBe('closed');
    call(subject, 0, failed);
    expect(subject.stateAt(0).kind).toBe('open');
    call(subject, 30_000, ok);

    expect(subject.stateAt(30_000).kind).toBe('closed');
    expect(resets).toBe(1);
  });
});
