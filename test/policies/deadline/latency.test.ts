import { describe, expect, it } from 'vitest';
import { LatencyWindow, percentileBound } from '../../../src/policies/deadline/latency.ts';

const config = { percentile: 99, multiplier: 1.5, minMs: 20, maxMs: 2_000, minSamples: 100, windowMs: 60_000 };

describe('a latency window', () => {
  it('gives the percentile of what it holds, within the sketch accuracy', () => {
    const window = new LatencyWindow(60_000);
    for (let ms = 1; ms <= 1_000; ms++) window.record(ms, 1_000);
    const { count, value } = window.quantile(0.99, 1_000);
    expect(count).toBe(1_000);
    expect(value).toBeGreaterThan(990 * 0.98);
    expect(value).toBeLessThan(990 * 1.02);
  });

  it('lets latencies fall out a window after they were seen', () => {
    const window = new LatencyWindow(60_000);
    for (let i = 0; i < 50; i++) window.record(500, 0);
    for (let i = 0; i < 50; i++) window.record(10, 50_000);
    expect(window.quantile(0.99, 50_000).count).toBe(100);
    // A window and more later, only the recent ones count.
    expect(window.quantile(0.99, 61_000)).toMatchObject({ count: 50 });
    expect(window.quantile(0.99, 61_000).value).toBeLessThan(11);
    expect(window.quantile(0.5, 200_000)).toEqual({ count: 0, value: 0 });
  });

  it('refuses a window of no length', () => {
    expect(() => new LatencyWindow(0)).toThrow(RangeError);
  });
});

describe('a percentile bound', () => {
  it('is max until the window holds minSamples latencies', () => {
    const window = new LatencyWindow(60_000);
    for (let i = 0; i < 99; i++) window.record(100, 1_000);
    expect(percentileBound(config, window, 1_000)).toBe(2_000);
  });

  it('is multiplier × the percentile, clamped to min and max', () => {
    const window = new LatencyWindow(60_000);
    for (let i = 0; i < 200; i++) window.record(100, 1_000);
    expect(percentileBound(config, window, 1_000)).toBeCloseTo(150, -1);

    const fast = new LatencyWindow(60_000);
    for (let i = 0; i < 200; i++) fast.record(2, 1_000);
    expect(percentileBound(config, fast, 1_000)).toBe(20);

    const slow = new LatencyWindow(60_000);
    for (let i = 0; i < 200; i++) slow.record(5_000, 1_000);
    expect(percentileBound(config, slow, 1_000)).toBe(2_000);
  });
});
