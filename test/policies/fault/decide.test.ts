import { describe, expect, it } from 'vitest';
import type { FaultConfig } from '../../../src/config/types.ts';
import { decideFault, type FaultDecision } from '../../../src/policies/fault/decide.ts';
import type { Random } from '../../../src/runtime/random.ts';
import { fixedRandom, seededRandom } from '../../support/seeded-random.ts';

/** Draws that visit the midpoints of `count` equal slices of [0, 1): a perfectly uniform sample. */
function evenlySpread(count: number): Random {
  let index = 0;
  return () => (index++ % count + 0.5) / count;
}

function decideMany(config: FaultConfig, random: Random, requests: number): FaultDecision[] {
  return Array.from({ length: requests }, () => decideFault(config, random));
}

const delayed = (decisions: FaultDecision[]) => decisions.filter((decision) => decision.delayMs > 0).length;
const aborted = (decisions: FaultDecision[]) => decisions.filter((decision) => decision.abortStatus !== null).length;

describe('fault decision', () => {
  it('injects nothing, and draws nothing, when the route has no fault configured', () => {
    let draws = 0;
    const counting: Random = () => {
      draws += 1;
      return 0;
    };
    expect(decideFault({}, counting)).toEqual({ delayMs: 0, abortStatus: null });
    expect(draws).toBe(0);
  });

  it('never injects at 0 percent, even on the lowest possible draw', () => {
    const config: FaultConfig = { delay: { percent: 0, durationMs: 500 }, abort: { percent: 0, status: 503 } };
    expect(decideFault(config, fixedRandom(0))).toEqual({ delayMs: 0, abortStatus: null });
  });

  it('always injects at 100 percent, even on the highest possible draw', () => {
    const config: FaultConfig = { delay: { percent: 100, durationMs: 500 }, abort: { percent: 100, status: 418 } };
    const highest = 1 - Number.EPSILON / 2;
    expect(decideFault(config, fixedRandom(highest))).toEqual({ delayMs: 500, abortStatus: 418 });
  });

  it('draws the delay first and the abort second, independently', () => {
    const config: FaultConfig = { delay: { percent: 10, durationMs: 200 }, abort: { percent: 10, status: 503 } };
    expect(decideFault(config, fixedRandom(0.05, 0.5))).toEqual({ delayMs: 200, abortStatus: null });
    expect(decideFault(config, fixedRandom(0.5, 0.05))).toEqual({ delayMs: 0, abortStatus: 503 });
  });

  it('uses the first draw for the abort when only an abort is configured', () => {
    const config: FaultConfig = { abort: { percent: 10, status: 503 } };
    expect(decideFault(config, fixedRandom(0.05, 0.9))).toEqual({ delayMs: 0, abortStatus: 503 });
  });

  it('selects exactly the configured share of a perfectly uniform sample', () => {
    // 10% of 10,000 evenly spread draws is 1,000 by arithmetic; 2.5% is 250.
    expect(delayed(decideMany({ delay: { percent: 10, durationMs: 100 } }, evenlySpread(10_000), 10_000))).toBe(1_000);
    expect(aborted(decideMany({ abort: { percent: 2.5, status: 503 } }, evenlySpread(10_000), 10_000))).toBe(250);
  });

  it('selects close to the configured share of seeded random draws', () => {
    // Binomial(10,000, 0.1): mean 1,000, standard deviation 30. Four deviations either side.
    for (const seed of [1, 2, 3, 4, 5]) {
      const count = aborted(decideMany({ abort: { percent: 10, status: 503 } }, seededRandom(seed), 10_000));
      expect(count).toBeGreaterThanOrEqual(880);
      expect(count).toBeLessThanOrEqual(1_120);
    }
  });

  it('delays and aborts independently, so both hit about percent × percent of requests', () => {
    const config: FaultConfig = { delay: { percent: 50, durationMs: 100 }, abort: { percent: 50, status: 503 } };
    const decisions = decideMany(config, seededRandom(7), 10_000);
    // Binomial(10,000, 0.25): mean 2,500, standard deviation about 43.
    const both = decisions.filter((decision) => decision.delayMs > 0 && decision.abortStatus !== null).length;
    expect(both).toBeGreaterThanOrEqual(2_330);
    expect(both).toBeLessThanOrEqual(2_670);
  });

  it('repeats the same decisions under the same seed', () => {
    const config: FaultConfig = { delay: { percent: 30, durationMs: 100 }, abort: { percent: 20, status: 500 } };
    expect(decideMany(config, seededRandom(42), 500)).toEqual(decideMany(config, seededRandom(42), 500));
    expect(decideMany(config, seededRandom(42), 500)).not.toEqual(decideMany(config, seededRandom(43), 500));
  });
});
