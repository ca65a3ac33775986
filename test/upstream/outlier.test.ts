// Outlier detection's pure core, driven by hand: each step says what time it is and what an
// attempt did, and the test reads which endpoints the balancer may pick.

import { describe, expect, it } from 'vitest';
import type { OutlierDetectionConfig } from '../../src/config/types.ts';
import { OutlierDetector, type OutlierChange } from '../../src/upstream/outlier.ts';

function config(overrides: Partial<OutlierDetectionConfig> = {}): OutlierDetectionConfig {
  return {
    consecutiveFailures: 5,
    baseEjectionTimeMs: 30_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 50,
    failOn: ['5xx', 'connect-failure', 'reset', 'timeout'],
    ...overrides,
  };
}

/** A Random that always returns `value`: 0.5 is no jitter, 0 is −15%, just under 1 is +15%. */
const fixed = (value: number) => () => value;

function detector(overrides: Partial<OutlierDetectionConfig> = {}, endpoints = ['a', 'b', 'c', 'd'], random = fixed(0.5)) {
  const changes: OutlierChange[] = [];
  const outliers = new OutlierDetector(config(overrides), random, (change) => changes.push(change));
  outliers.setEndpoints(endpoints, 0);
  return { outliers, changes };
}

const failure = (startedAt: number) => ({ failed: true, startedAt });
const success = (startedAt: number, latencyMs = 5) => ({ failed: false, latencyMs, startedAt });

function fail(outliers: OutlierDetector, key: string, times: number, now: number): void {
  for (let i = 0; i < times; i++) outliers.record(key, failure(now), now);
}

function ejected(outliers: OutlierDetector, keys: readonly string[], now: number): string[] {
  outliers.settle(now);
  return keys.filter((key) => outliers.isEjected(key));
}

describe('consecutive failures', () => {
  it('eject an endpoint at the fifth failure in a row, for the base ejection time', () => {
    const { outliers, changes } = detector();

    // Four failures in a row: still in.
    fail(outliers, 'a', 4, 1_000);
    expect(outliers.isEjected('a')).toBe(false);

    // The fifth ejects it for 30 s.
    fail(outliers, 'a', 1, 1_000);
    expect(outliers.health('a', 1_000)).toEqual({ kind: 'ejected', reason: 'consecutive', since: 1_000, until: 31_000 });
    expect(changes).toEqual([{ kind: 'ejected', endpoint: 'a', reason: 'consecutive', durationMs: 30_000, ejections: 1 }]);
  });

  it('start counting again after a success', () => {
    const { outliers } = detector();

    fail(outliers, 'a', 4, 1_000);
    outliers.record('a', success(1_000), 1_000);
    fail(outliers, 'a', 4, 1_000);

    expect(outliers.isEjected('a')).toBe(false);
  });

  it('are off at 0', () => {
    const { outliers } = detector({ consecutiveFailures: 0 });

    fail(outliers, 'a', 100, 1_000);

    expect(outliers.isEjected('a')).toBe(false);
  });
});

describe('an ejection', () => {
  it('ends when its time is up: the endpoint takes traffic again, and the return is told', () => {
    const { outliers, changes } = detector();
    fail(outliers, 'a', 5, 1_000);

    // A millisecond before the end it is still out.
    expect(ejected(outliers, ['a'], 30_999)).toEqual(['a']);
    // At the end it is back.
    expect(outliers.health('a', 31_000)).toEqual({ kind: 'active' });
    expect(changes.at(-1)).toEqual({ kind: 'returned', endpoint: 'a' });
  });

  it('is followed by probation: one failure ejects it again at once, for twice as long', () => {
    const { outliers, changes } = detector();
    fail(outliers, 'a', 5, 1_000);
    outliers.settle(31_000);

    fail(outliers, 'a', 1, 31_500);

    expect(outliers.health('a', 31_500)).toEqual({ kind: 'ejected', reason: 'consecutive', since: 31_500, until: 91_500 });
    expect(changes.at(-1)).toEqual({ kind: 'ejected', endpoint: 'a', reason: 'consecutive', durationMs: 60_000, ejections: 2 });
  });

  it('ends probation at the first success: a later failure counts as one of five again', () => {
    const { outliers } = detector();
    fail(outliers, 'a', 5, 1_000);
    outliers.settle(31_000);

    outliers.record('a', success(31_100), 31_100);
    fail(outliers, 'a', 4, 31_200);

    expect(outliers.isEjected('a')).toBe(false);
  });

  it('grows with each ejection in a row, up to maxEjectionTime', () => {
    const { outliers, changes } = detector({ maxEjectionTimeMs: 100_000 });
    let now = 0;
    for (let round = 0; round < 5; round++) {
      fail(outliers, 'a', 5, now);
      const health = outliers.health('a', now);
      now = health?.kind === 'ejected' ? health.until : now;
      outliers.settle(now);
    }

    const durations = changes.flatMap((change) => (change.kind === 'ejected' ? [change.durationMs] : []));
    expect(durations).toEqual([30_000, 60_000, 90_000, 100_000, 100_000]);
  });

  it('grows less for an endpoint that stayed healthy in between: each base ejection time back in service takes one off', () => {
    const { outliers, changes } = detector();
    fail(outliers, 'a', 5, 0);
    outliers.settle(30_000);
    outliers.record('a', success(30_000), 30_000);

    // Back for 65 s (two base ejection times) before failing again: the multiplier goes 1 → 0 → 1.
    fail(outliers, 'a', 5, 95_000);

    expect(changes.at(-1)).toEqual({ kind: 'ejected', endpoint: 'a', reason: 'consecutive', durationMs: 30_000, ejections: 1 });
  });

  it('lasts its time ±15%, drawn from the Random it is given', () => {
    const shortest = detector({}, ['a', 'b'], fixed(0));
    fail(shortest.outliers, 'a', 5, 0);
    const longest = detector({}, ['a', 'b'], fixed(0.999_999));
    fail(longest.outliers, 'a', 5, 0);

    expect(shortest.changes[0]).toMatchObject({ durationMs: 25_500 });
    expect((longest.changes[0] as { durationMs: number }).durationMs).toBeCloseTo(34_500, 0);
  });

  it('never lasts beyond maxEjectionTime, jitter included', () => {
    const { outliers, changes } = detector({ baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 30_000 }, ['a', 'b'], fixed(0.999));

    fail(outliers, 'a', 5, 0);

    expect(changes[0]).toMatchObject({ durationMs: 30_000 });
  });

  it('ignores the late outcomes of attempts sent before it, and of attempts sent before the endpoint came back', () => {
    const { outliers, changes } = detector();
    fail(outliers, 'a', 5, 1_000);
    // Attempts still in flight when it was ejected fail while it is out: nothing changes.
    fail(outliers, 'a', 3, 2_000);
    expect(outliers.health('a', 2_000)).toMatchObject({ until: 31_000 });

    // Back at 31 s; an attempt sent at 1 s fails only now: it says nothing of the endpoint as it is.
    outliers.settle(31_000);
    outliers.record('a', failure(1_000), 31_500);

    expect(outliers.isEjected('a')).toBe(false);
    expect(changes.filter((change) => change.kind === 'ejected')).toHaveLength(1);
  });
});

describe('the ejection cap', () => {
  it('is computed after the ejection: with maxEjectionPercent 50, two of four endpoints may be out, not three', () => {
    const { outliers } = detector();

    fail(outliers, 'a', 5, 1_000);
    fail(outliers, 'b', 5, 1_000);
    fail(outliers, 'c', 5, 1_000);

    expect(ejected(outliers, ['a', 'b', 'c', 'd'], 1_000)).toEqual(['a', 'b']);
  });

  it('ejects nothing when even one ejection would exceed it (no endpoint is ejected regardless, unlike Envoy #3263)', () => {
    const { outliers } = detector({ maxEjectionPercent: 10 });

    fail(outliers, 'a', 5, 1_000);

    expect(outliers.isEjected('a')).toBe(false);
  });

  it('never ejects the last endpoint, even at 100%', () => {
    const { outliers } = detector({ maxEjectionPercent: 100 }, ['a', 'b']);

    fail(outliers, 'a', 5, 1_000);
    fail(outliers, 'b', 5, 1_000);

    expect(ejected(outliers, ['a', 'b'], 1_000)).toEqual(['a']);
  });

  it('never ejects the only endpoint', () => {
    const { outliers } = detector({ maxEjectionPercent: 100 }, ['a']);

    fail(outliers, 'a', 50, 1_000);

    expect(outliers.isEjected('a')).toBe(false);
  });

  it('lets a refused ejection happen once another endpoint is back', () => {
    const { outliers } = detector({}, ['a', 'b', 'c']);
    fail(outliers, 'a', 5, 1_000);
    // b fails as much, but a second ejection of three would be 67%.
    fail(outliers, 'b', 5, 1_000);
    expect(ejected(outliers, ['a', 'b', 'c'], 1_000)).toEqual(['a']);

    // a comes back; b's next failure is its sixth in a row.
    outliers.settle(31_000);
    fail(outliers, 'b', 1, 31_000);

    expect(ejected(outliers, ['a', 'b', 'c'], 31_000)).toEqual(['b']);
  });
});

describe('the failure rate', () => {
  const rate = { failureRate: { threshold: 0.5, minRequests: 10, windowMs: 10_000 }, consecutiveFailures: 0 };

  it('ejects an endpoint once half its attempts in the window failed, with enough of them', () => {
    const { outliers, changes } = detector(rate);
    // Alternating: never two failures in a row, but half of them fail.
    for (let i = 0; i < 9; i++) outliers.record('a', i % 2 === 0 ? failure(1_000) : success(1_000), 1_000);
    expect(outliers.isEjected('a')).toBe(false);

    // The tenth attempt reaches minRequests, at 5 failures out of 10.
    outliers.record('a', success(1_000), 1_000);

    expect(outliers.health('a', 1_000)).toMatchObject({ kind: 'ejected', reason: 'failure_rate' });
    expect(changes[0]).toMatchObject({ reason: 'failure_rate' });
  });

  it('forgets attempts older than the window', () => {
    const { outliers } = detector(rate);
    for (let i = 0; i < 4; i++) outliers.record('a', failure(0), 0);
    // Eleven seconds later the four failures are gone: ten successes and one failure stay under 50%.
    for (let i = 0; i < 9; i++) outliers.record('a', success(11_000), 11_000);
    outliers.record('a', failure(11_000), 11_000);

    expect(outliers.isEjected('a')).toBe(false);
  });

  it('is off when absent', () => {
    const { outliers } = detector({ consecutiveFailures: 0 });
    for (let i = 0; i < 40; i++) outliers.record('a', i % 2 === 0 ? failure(1_000) : success(1_000), 1_000);

    expect(outliers.isEjected('a')).toBe(false);
  });
});

describe('latency against the other endpoints', () => {
  const latency = { latency: { factor: 3, minRequests: 5, windowMs: 10_000 } };

  function answer(outliers: OutlierDetector, key: string, latencyMs: number, count: number, now: number): void {
    for (let i = 0; i < count; i++) outliers.record(key, success(now - latencyMs, latencyMs), now);
  }

  it('ejects an endpoint whose median is above three times the median of the others', () => {
    const { outliers, changes } = detector(latency);
    answer(outliers, 'a', 10, 5, 1_000);
    answer(outliers, 'b', 12, 5, 1_000);
    answer(outliers, 'c', 11, 5, 1_000);
    answer(outliers, 'd', 40, 5, 1_000);

    // Checked at most once per tenth of the window: the next check is 1 s later.
    answer(outliers, 'd', 40, 1, 2_000);

    expect(ejected(outliers, ['a', 'b', 'c', 'd'], 2_000)).toEqual(['d']);
    expect(changes[0]).toMatchObject({ endpoint: 'd', reason: 'latency' });
  });

  it('leaves an endpoint at or under the factor alone', () => {
    const { outliers } = detector(latency);
    answer(outliers, 'a', 10, 5, 1_000);
    answer(outliers, 'b', 10, 5, 1_000);
    answer(outliers, 'c', 25, 5, 1_000);
    answer(outliers, 'c', 25, 1, 2_000);

    expect(ejected(outliers, ['a', 'b', 'c'], 2_000)).toEqual([]);
  });

  it('judges and compares only endpoints with minRequests latencies in the window', () => {
    const { outliers } = detector(latency);
    // d is slow but has four answers; a has five fast ones, but there is no other to compare it with.
    answer(outliers, 'a', 10, 5, 1_000);
    answer(outliers, 'd', 400, 4, 1_000);
    answer(outliers, 'a', 10, 1, 2_000);
    expect(ejected(outliers, ['a', 'd'], 2_000)).toEqual([]);

    // d's fifth answer, a tenth of the window later: now there are two to compare.
    answer(outliers, 'd', 400, 1, 3_000);
    expect(ejected(outliers, ['a', 'd'], 3_000)).toEqual(['d']);
  });

  it('ejects the slowest first when the cap allows only one', () => {
    const { outliers } = detector({ ...latency, maxEjectionPercent: 25 });
    answer(outliers, 'a', 10, 5, 1_000);
    answer(outliers, 'b', 10, 5, 1_000);
    answer(outliers, 'c', 100, 5, 1_000);
    answer(outliers, 'd', 300, 5, 1_000);
    answer(outliers, 'a', 10, 1, 2_000);

    expect(ejected(outliers, ['a', 'b', 'c', 'd'], 2_000)).toEqual(['d']);
  });

  it('counts a timed-out attempt at the time it waited, and a failure without a wait not at all', () => {
    const { outliers } = detector({ ...latency, consecutiveFailures: 0 });
    answer(outliers, 'a', 10, 5, 1_000);
    answer(outliers, 'b', 10, 5, 1_000);
    // c's connections are refused at once: failures, but no latency to judge.
    for (let i = 0; i < 5; i++) outliers.record('c', failure(1_000), 1_000);
    // d times out after 500 ms each time.
    for (let i = 0; i < 5; i++) outliers.record('d', { failed: true, latencyMs: 500, startedAt: 500 }, 1_000);
    answer(outliers, 'a', 10, 1, 2_000);

    expect(ejected(outliers, ['a', 'b', 'c', 'd'], 2_000)).toEqual(['d']);
  });
});

describe('the endpoints it judges', () => {
  it('follow discovery: a new endpoint starts active, a gone one is forgotten', () => {
    const { outliers } = detector({}, ['a', 'b', 'c']);
    fail(outliers, 'a', 5, 1_000);

    outliers.setEndpoints(['a', 'b', 'c', 'd'], 2_000);
    expect(outliers.health('d', 2_000)).toEqual({ kind: 'active' });

    outliers.setEndpoints(['b', 'c', 'd'], 3_000);
    expect(outliers.health('a', 3_000)).toBeUndefined();
    // An outcome for an endpoint that is gone changes nothing.
    fail(outliers, 'a', 5, 3_000);
    expect(outliers.health('a', 3_000)).toBeUndefined();
  });

  it('are never all ejected: when discovery leaves only ejected ones, the one due back first returns', () => {
    const { outliers, changes } = detector({ maxEjectionPercent: 50 }, ['a', 'b', 'c', 'd']);
    fail(outliers, 'a', 5, 1_000);
    fail(outliers, 'b', 5, 2_000);

    // c and d leave DNS: only the two ejected endpoints remain.
    outliers.setEndpoints(['a', 'b'], 3_000);

    expect(ejected(outliers, ['a', 'b'], 3_000)).toEqual(['b']);
    expect(changes.at(-1)).toEqual({ kind: 'returned', endpoint: 'a' });
  });

  it('changes its version at each ejection and return, so readers can cache', () => {
    const { outliers } = detector();
    const start = outliers.version;
    fail(outliers, 'a', 5, 0);
    const afterEjection = outliers.version;
    outliers.settle(30_000);

    expect(afterEjection).toBeGreaterThan(start);
    expect(outliers.version).toBeGreaterThan(afterEjection);
  });
});
