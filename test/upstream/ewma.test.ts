import { describe, expect, it } from 'vitest';
import { PeakEwma, defaultDecayMs, defaultRttMs, peakEwmaCost } from '../../src/upstream/ewma.ts';

describe('peak EWMA', () => {
  it('starts at the default 30 ms', () => {
    expect(new PeakEwma(0).estimate(0)).toBe(defaultRttMs);
  });

  it('jumps to a sample above the estimate at once', () => {
    const ewma = new PeakEwma(0);

    ewma.observe(250, 10);

    expect(ewma.estimate(10)).toBe(250);
  });

  it('moves toward a lower sample by the weight the time since the last sample gives it', () => {
    const ewma = new PeakEwma(0, { initialMs: 100 });

    // One decay period later: the old estimate keeps 1/e of its weight, faded to 100/e, and the
    // 10 ms sample takes the rest.
    ewma.observe(10, defaultDecayMs);

    expect(ewma.estimate(defaultDecayMs)).toBeCloseTo(100 / Math.E + 10 * (1 - 1 / Math.E), 6);
  });

  it('barely moves for a lower sample right after the last one', () => {
    const ewma = new PeakEwma(0, { initialMs: 100 });

    ewma.observe(10, 1);

    expect(ewma.estimate(1)).toBeGreaterThan(99.9);
  });

  it('takes the time an attempt ran before it was called off as a floor: a peak when above, nothing when below', () => {
    const ewma = new PeakEwma(0, { initialMs: 20 });

    ewma.observeAtLeast(5, 100);
    expect(ewma.estimate(100)).toBeCloseTo(20 * Math.exp(-100 / defaultDecayMs), 9);

    ewma.observeAtLeast(80, 200);
    expect(ewma.estimate(200)).toBe(80);
  });

  it('fades toward zero while no sample comes', () => {
    const ewma = new PeakEwma(0, { initialMs: 100 });

    expect(ewma.estimate(defaultDecayMs)).toBeCloseTo(100 / Math.E, 6);
    expect(ewma.estimate(10 * defaultDecayMs)).toBeLessThan(0.01);
  });

  it('takes a sample above the faded estimate as a peak', () => {
    const ewma = new PeakEwma(0, { initialMs: 100 });

    // Faded to about 37 ms, a 50 ms sample is a new peak.
    ewma.observe(50, defaultDecayMs);

    expect(ewma.estimate(defaultDecayMs)).toBe(50);
  });

  it('treats a negative latency (a clock step) as zero and never goes back in time', () => {
    const ewma = new PeakEwma(1_000, { initialMs: 100 });

    ewma.observe(-5, 500);

    expect(ewma.estimate(1_000)).toBeCloseTo(100, 6);
  });

  it('costs latency × (requests in flight + 1)', () => {
    const ewma = new PeakEwma(0, { initialMs: 20 });

    expect(peakEwmaCost(ewma, 0, 0)).toBe(20);
    expect(peakEwmaCost(ewma, 4, 0)).toBe(100);
  });
});
