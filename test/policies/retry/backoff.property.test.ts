import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BackoffConfig } from '../../../src/config/types.ts';
import { backoffDelay } from '../../../src/policies/retry/backoff.ts';

// Bounds every delay distribution over arbitrary configs, retry numbers and random draws.

const types = ['none', 'fixed', 'linear', 'exponential'] as const;
const jitters = ['none', 'full', 'equal', 'decorrelated'] as const;

/** base ≤ max, as the config loader guarantees. */
const backoffs = (jitter: fc.Arbitrary<BackoffConfig['jitter']>) =>
  fc
    .record({
      type: fc.constantFrom(...types),
      jitter,
      baseMs: fc.integer({ min: 0, max: 60_000 }),
      extraMs: fc.integer({ min: 0, max: 600_000 }),
    })
    .map(({ extraMs, ...rest }): BackoffConfig => ({ ...rest, maxMs: rest.baseMs + extraMs }));

const retryNumbers = fc.integer({ min: 1, max: 2_000 });
const draws = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

/** The delay the type asks for, before jitter. */
const unjittered = (config: BackoffConfig, retryNumber: number) => backoffDelay({ ...config, jitter: 'none' }, retryNumber, config.baseMs, () => 0);

describe('backoff delay bounds', () => {
  it('is always within [0, max]', () => {
    fc.assert(
      fc.property(backoffs(fc.constantFrom(...jitters)), retryNumbers, fc.double({ min: 0, max: 3e6, noNaN: true }), draws, (config, n, previous, draw) => {
        const delay = backoffDelay(config, n, Math.max(previous, config.baseMs), () => draw);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(config.maxMs);
      }),
    );
  });

  it('full jitter stays in [0, d]', () => {
    fc.assert(
      fc.property(backoffs(fc.constant('full')), retryNumbers, draws, (config, n, draw) => {
        const delay = backoffDelay(config, n, config.baseMs, () => draw);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(unjittered(config, n));
      }),
    );
  });

  it('equal jitter stays in [d/2, d]', () => {
    fc.assert(
      fc.property(backoffs(fc.constant('equal')), retryNumbers, draws, (config, n, draw) => {
        const d = unjittered(config, n);
        const delay = backoffDelay(config, n, config.baseMs, () => draw);
        expect(delay).toBeGreaterThanOrEqual(d / 2);
        expect(delay).toBeLessThanOrEqual(d);
      }),
    );
  });

  it('decorrelated jitter stays in [base, min(max, 3 × previous)]', () => {
    const configs = backoffs(fc.constant('decorrelated')).filter((config) => config.type !== 'none');
    fc.assert(
      fc.property(configs, retryNumbers, fc.double({ min: 0, max: 3e6, noNaN: true }), draws, (config, n, extra, draw) => {
        const previous = config.baseMs + extra;
        const delay = backoffDelay(config, n, previous, () => draw);
        expect(delay).toBeGreaterThanOrEqual(config.baseMs);
        expect(delay).toBeLessThanOrEqual(Math.min(config.maxMs, 3 * previous));
      }),
    );
  });

  it('decorrelated jitter, fed its own delays, never leaves [base, max]', () => {
    const configs = backoffs(fc.constant('decorrelated')).filter((config) => config.type !== 'none');
    fc.assert(
      fc.property(configs, fc.array(draws, { minLength: 1, maxLength: 50 }), (config, sequence) => {
        let previous = config.baseMs;
        sequence.forEach((draw, i) => {
          previous = backoffDelay(config, i + 1, previous, () => draw);
          expect(previous).toBeGreaterThanOrEqual(config.baseMs);
          expect(previous).toBeLessThanOrEqual(config.maxMs);
        });
      }),
    );
  });
});
