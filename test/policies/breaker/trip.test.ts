import { describe, expect, it } from 'vitest';
import { RateTripRule } from '../../../src/policies/breaker/trip.ts';
import { failed, ok, slow } from './breaker-config.ts';

const thresholds = { windowMs: 10_000, minRequests: 4, failureRate: 0.5, slowCallRate: 1 };

/** Records the outcomes in turn at `now`; returns what the rule answered to each. */
function feed(rule: RateTripRule, now: number, outcomes: readonly { failed: boolean; slow: boolean }[]): boolean[] {
  return outcomes.map((outcome) => rule.record(now, outcome));
}

describe('failure-rate trip rule', () => {
  it('makes no decision below minRequests, even when every call failed', () => {
    const rule = new RateTripRule(thresholds);

    expect(feed(rule, 1_000, [failed, failed, failed])).toEqual([false, false, false]);
  });

  it('opens at exactly the failure threshold once minRequests calls were made', () => {
    const rule = new RateTripRule(thresholds);

    expect(feed(rule, 1_000, [ok, failed, ok, failed])).toEqual([false, false, false, true]);
  });

  it('stays closed just below the threshold', () => {
    const rule = new RateTripRule({ ...thresholds, minRequests: 5 });

    // 2 of 5 failed: 40% < 50%.
    expect(feed(rule, 1_000, [failed, ok, failed, ok, ok])).toEqual([false, false, false, false, false]);
  });

  it('opens on the call that reaches minRequests even when that call succeeds', () => {
    const rule = new RateTripRule(thresholds);

    // 3 failures, then a success: 3 of 4 failed.
    expect(feed(rule, 1_000, [failed, failed, failed, ok])).toEqual([false, false, false, true]);
  });

  it('compares rates without rounding surprises (3 of 10 against 0.3)', () => {
    const rule = new RateTripRule({ ...thresholds, minRequests: 10, failureRate: 0.3 });

    const answers = feed(rule, 1_000, [failed, failed, failed, ok, ok, ok, ok, ok, ok, ok]);

    expect(answers).toEqual([...Array<boolean>(9).fill(false), true]);
  });

  it('lets failures age out of the window', () => {
    const rule = new RateTripRule(thresholds);
    feed(rule, 1_000, [failed, failed, failed]);

    // 10s later the three failures are gone: four successes make a healthy window.
    expect(feed(rule, 11_000, [ok, ok, ok, ok])).toEqual([false, false, false, false]);
    expect(rule.rates(11_000)).toMatchObject({ calls: 4, failureRate: 0 });
  });

  it('opens on the slow-call rate when it is below 1', () => {
    const rule = new RateTripRule({ ...thresholds, slowCallRate: 0.75 });

    expect(feed(rule, 1_000, [slow, slow, ok, slow])).toEqual([false, false, false, true]);
  });

  it('never opens on slow calls at slowCallRate 1.0 (off), and does not hold slowness against a call', () => {
    const rule = new RateTripRule(thresholds);

    expect(feed(rule, 1_000, [slow, slow, slow, slow, slow])).toEqual([false, false, false, false, false]);
    expect(rule.rates(1_000).slowRate).toBe(1);
    expect(rule.isBad(slow)).toBe(false);
  });

  it('holds failures, and slowness when slow calls can open it, against a call', () => {
    const watchingSlowCalls = new RateTripRule({ ...thresholds, slowCallRate: 0.5 });

    expect(watchingSlowCalls.isBad(failed)).toBe(true);
    expect(watchingSlowCalls.isBad(slow)).toBe(true);
    expect(watchingSlowCalls.isBad(ok)).toBe(false);
  });

  it('starts afresh after reset', () => {
    const rule = new RateTripRule(thresholds);
    feed(rule, 1_000, [failed, failed, failed]);

    rule.reset();

    // Without the reset the next failure would open it (4 of 4).
    expect(feed(rule, 1_000, [failed])).toEqual([false]);
    expect(rule.rates(1_000).calls).toBe(1);
  });
});
