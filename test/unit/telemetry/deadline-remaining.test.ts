import { describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '../../../src/telemetry/metrics.ts';
import { attemptRecord, failed } from '../../support/records.ts';

const name = 'breakwater_upstream_attempt_deadline_remaining_seconds';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** The histogram's samples for one route and upstream, by sample name (`_bucket`, `_sum`, `_count`). */
async function series(metrics: Metrics, route: string, upstream: string): Promise<Sample[]> {
  const family = (await metrics.registry.getMetricsAsJSON()).find((metric) => metric.name === name);
  if (family === undefined) throw new Error(`metric ${name} is not registered`);
  return (family.values as Sample[]).filter((sample) => sample.labels.route === route && sample.labels.upstream === upstream);
}

function bucketCounts(samples: Sample[]): Map<string | number, number> {
  return new Map(samples.filter((sample) => sample.metricName === `${name}_bucket`).map((sample) => [sample.labels.le!, sample.value]));
}

const attempt = attemptRecord({ remainingMs: 2000 });

describe('deadline remaining when an attempt starts', () => {
  it('observes the budget left at each attempt, in seconds, per route and upstream', async () => {
    const metrics = createMetrics();

    // A first attempt with the whole 2 s route timeout, then a retry with 300 ms left.
    metrics.recordAttempt(attempt);
    metrics.recordAttempt({ ...attempt, outcome: failed('timeout'), remainingMs: 300 });

    const samples = await series(metrics, 'charge', 'payments');
    expect(samples).toContainEqual({ metricName: `${name}_count`, labels: { route: 'charge', upstream: 'payments' }, value: 2 });
    expect(samples).toContainEqual({ metricName: `${name}_sum`, labels: { route: 'charge', upstream: 'payments' }, value: 2.3 });
    const buckets = bucketCounts(samples);
    // 300 ms lies between the 250 ms and 500 ms bounds, 2 s between 1 s and 2.5 s.
    expect(buckets.get(0.25)).toBe(0);
    expect(buckets.get(0.5)).toBe(1);
    expect(buckets.get(1)).toBe(1);
    expect(buckets.get(2.5)).toBe(2);
  });

  it('spans half a millisecond to the 60 s a caller can grant by default', async () => {
    const metrics = createMetrics();

    metrics.recordAttempt({ ...attempt, remainingMs: 45_000 });

    const buckets = bucketCounts(await series(metrics, 'charge', 'payments'));
    expect([...buckets.keys()]).toEqual([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, '+Inf']);
    expect(buckets.get(30)).toBe(0);
    expect(buckets.get(60)).toBe(1);
  });

  it('counts an attempt that starts at its deadline as zero left, never as a negative time', async () => {
    const metrics = createMetrics();

    metrics.recordAttempt({ ...attempt, remainingMs: -3 });

    const samples = await series(metrics, 'charge', 'payments');
    expect(samples).toContainEqual({ metricName: `${name}_sum`, labels: { route: 'charge', upstream: 'payments' }, value: 0 });
    expect(bucketCounts(samples).get(0.0005)).toBe(1);
  });

  it('keeps upstreams apart, so a failover upstream shows the budget its attempts got', async () => {
    const metrics = createMetrics();

    metrics.recordAttempt(attempt);
    metrics.recordAttempt({ ...attempt, upstream: 'payments-dr', remainingMs: 800 });

    expect(await series(metrics, 'charge', 'payments')).toContainEqual({
      metricName: `${name}_sum`,
      labels: { route: 'charge', upstream: 'payments' },
      value: 2,
    });
    expect(await series(metrics, 'charge', 'payments-dr')).toContainEqual({
      metricName: `${name}_sum`,
      labels: { route: 'charge', upstream: 'payments-dr' },
      value: 0.8,
    });
  });
});
