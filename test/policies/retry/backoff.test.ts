import { describe, expect, it } from 'vitest';
import type { BackoffConfig } from '../../../src/config/types.ts';
import { backoffDelay } from '../../../src/policies/retry/backoff.ts';
import { fixedRandom } from '../../support/seeded-random.ts';

const base = 100;
const max = 1_000;

function backoff(type: BackoffConfig['type'], jitter: BackoffConfig['jitter'], overrides: Partial<BackoffConfig> = {}): BackoffConfig {
  return { type, jitter, baseMs: base, maxMs: max, ...overrides };
}

/** Delays of retries 1..n without jitter. */
function delays(config: BackoffConfig, n: number): number[] {
  return Array.from({ length: n }, (_, i) => backoffDelay(config, i + 1, base, fixedRandom(0.5)));
}

describe('backoff types without jitter', () => {
  it('none retries at once, whatever the jitter', () => {
    for (const jitter of ['none', 'full', 'equal', 'decorrelated'] as const) {
      expect(backoffDelay(backoff('none', jitter), 3, 500, fixedRandom(0.9))).toBe(0);
    }
  });

  it('fixed waits base every time, capped at max', () => {
    expect(delays(backoff('fixed', 'none'), 3)).toEqual([base, base, base]);
    expect(backoffDelay(backoff('fixed', 'none', { baseMs: 300, maxMs: 200 }), 1, 300, fixedRandom(0))).toBe(200);
  });

  it('linear waits base × retry number, capped at max', () => {
    expect(delays(backoff('linear', 'none'), 4)).toEqual([base, 2 * base, 3 * base, 4 * base]);
    expect(backoffDelay(backoff('linear', 'none'), 25, base, fixedRandom(0))).toBe(max);
  });

  it('exponential doubles from base, capped at max', () => {
    expect(delays(backoff('exponential', 'none'), 5)).toEqual([base, 2 * base, 4 * base, 8 * base, max]);
  });

  it('exponential stays at max for any retry number, and at 0 with a 0ms base', () => {
    expect(backoffDelay(backoff('exponential', 'none'), 5_000, base, fixedRandom(0))).toBe(max);
    expect(backoffDelay(backoff('exponential', 'none', { baseMs: 0 }), 5_000, 0, fixedRandom(0))).toBe(0);
  });
});

describe('jitter', () => {
  it('full jitter is uniform in [0, d)', () => {
    // Retry 3 of an exponential backoff: d = 4 × base.
    expect(backoffDelay(backoff('exponential', 'full'), 3, base, fixedRandom(0))).toBe(0);
    expect(backoffDelay(backoff('exponential', 'full'), 3, base, fixedRandom(0.25))).toBe(4 * base * 0.25);
    expect(backoffDelay(backoff('exponential', 'full'), 3, base, fixedRandom(0.75))).toBe(4 * base * 0.75);
  });

  it('equal jitter is d/2 plus uniform in [0, d/2)', () => {
    expect(backoffDelay(backoff('linear', 'equal'), 2, base, fixedRandom(0))).toBe(base);
    expect(backoffDelay(backoff('linear', 'equal'), 2, base, fixedRandom(0.5))).toBe(base + base / 2);
  });

  it('equal jitter applies to the capped delay', () => {
    expect(backoffDelay(backoff('exponential', 'equal'), 10, base, fixedRandom(0.5))).toBe(max / 2 + max / 4);
  });

  it('decorrelated jitter is uniform in [base, 3 × previous), capped at max', () => {
    const config = backoff('exponential', 'decorrelated');
    // The first retry: previous = base, so [base, 3 × base).
    expect(backoffDelay(config, 1, base, fixedRandom(0))).toBe(base);
    expect(backoffDelay(config, 1, base, fixedRandom(0.5))).toBe(base + (3 * base - base) * 0.5);
    // A later retry grows from the delay before it, not from the retry number.
    expect(backoffDelay(config, 2, 200, fixedRandom(0.5))).toBe(base + (600 - base) * 0.5);
    expect(backoffDelay(config, 7, 200, fixedRandom(0.5))).toBe(base + (600 - base) * 0.5);
    expect(backoffDelay(config, 3, 900, fixedRandom(0.5))).toBe(max);
  });

  it('decorrelated jitter never goes below base, even after a shorter wait', () => {
    expect(backoffDelay(backoff('fixed', 'decorrelated'), 2, 10, fixedRandom(0.5))).toBe(base);
  });
});
