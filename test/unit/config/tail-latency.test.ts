import { describe, expect, it } from 'vitest';
import { formatProblem, parseConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';

function routeWith(policy: string): string {
  return `
upstreams:
  search: {endpoints: [http://search:8080]}
routes:
  - name: search
    upstream: search
${policy}
`;
}

function valid(yaml: string): Config {
  const result = parseConfig(yaml, 'test.yaml');
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.config;
}

function problems(yaml: string): string[] {
  const result = parseConfig(yaml, 'test.yaml');
  return result.ok ? [] : result.problems.map(formatProblem);
}

describe('an adaptive per-try timeout', () => {
  it('takes a percentile with every default filled in', () => {
    const route = valid(routeWith('    retry: {perTryTimeout: {percentile: 99, max: 2s}}')).routes[0]!;
    expect(route.retry?.perTryTimeoutMs).toBeUndefined();
    expect(route.retry?.adaptivePerTryTimeout).toEqual({ percentile: 99, multiplier: 1.5, minMs: 1, maxMs: 2_000, minSamples: 100, windowMs: 60_000 });
  });

  it('keeps a duration as a fixed timeout', () => {
    const route = valid(routeWith('    retry: {perTryTimeout: 500ms}')).routes[0]!;
    expect(route.retry?.perTryTimeoutMs).toBe(500);
    expect(route.retry?.adaptivePerTryTimeout).toBeUndefined();
  });

  it('refuses a max below min and a missing max', () => {
    expect(problems(routeWith('    retry: {perTryTimeout: {percentile: 99, min: 2s, max: 1s}}')).join('\n')).toContain('perTryTimeout.max: must be at least min');
    expect(problems(routeWith('    retry: {perTryTimeout: {percentile: 99}}'))).not.toEqual([]);
  });
});

describe('hedging', () => {
  it('takes a fixed delay with the default attempts and budget', () => {
    const route = valid(routeWith('    hedge: {delay: 20ms}')).routes[0]!;
    expect(route.hedge).toEqual({ delayMs: 20, maxAttempts: 2, budget: { ratio: 0.05, minPerSecond: 5, windowMs: 10_000 } });
  });

  it('takes a percentile delay', () => {
    const route = valid(routeWith('    hedge: {delay: {percentile: 95, min: 5ms, max: 500ms}, maxAttempts: 3, budget: {ratio: "10%"}}')).routes[0]!;
    expect(route.hedge).toEqual({
      adaptiveDelay: { percentile: 95, multiplier: 1, minMs: 5, maxMs: 500, minSamples: 100, windowMs: 60_000 },
      maxAttempts: 3,
      budget: { ratio: 0.1, minPerSecond: 5, windowMs: 10_000 },
    });
  });

  it('allows 2 to 5 attempts in flight, and no unknown key', () => {
    expect(problems(routeWith('    hedge: {delay: 20ms, maxAttempts: 6}'))).not.toEqual([]);
    expect(problems(routeWith('    hedge: {delay: 20ms, maxAttempts: 1}'))).not.toEqual([]);
    expect(problems(routeWith('    hedge: {delay: 20ms, onTimeout: true}')).join('\n')).toContain('onTimeout');
  });
});
