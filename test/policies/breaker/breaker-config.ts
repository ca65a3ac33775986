import type { CircuitBreakerConfig } from '../../../src/config/types.ts';

/** A breaker config small enough to reason about in a test: 4 calls decide, 2 probes close. */
export function breakerConfig(overrides: Partial<CircuitBreakerConfig> = {}): CircuitBreakerConfig {
  return {
    windowMs: 10_000,
    minRequests: 4,
    failureRate: 0.5,
    slowCallDurationMs: 1_000,
    slowCallRate: 1,
    openForMs: 30_000,
    openForMaxMs: 30_000,
    halfOpenRequests: 2,
    failOn: ['5xx', 'connect-failure', 'reset', 'timeout'],
    ...overrides,
  };
}

export const ok = { failed: false, slow: false } as const;
export const failed = { failed: true, slow: false } as const;
export const slow = { failed: false, slow: true } as const;
