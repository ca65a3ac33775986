import { describe, expect, it } from 'vitest';
import { bucketsPerWindow, SlidingWindow } from '../../../src/policies/breaker/window.ts';
import { failed, ok, slow } from './breaker-config.ts';

describe('sliding window', () => {
  it('reads an empty window as no calls and zero rates', () => {
    const window = new SlidingWindow(10_000);

    expect(window.rates(5_000)).toEqual({ calls: 0, failures: 0, slowCalls: 0, failureRate: 0, slowRate: 0 });
  });

  it('counts calls, failures and slow calls, and their shares', () => {
    const window = new SlidingWindow(10_000);

    window.record(1_000, failed);
    window.record(2_500, slow);
    window.record(2_600, { failed: true, slow: true });
    window.record(9_000, ok);

    expect(window.rates(9_000)).toEqual({ calls: 4, failures: 2, slowCalls: 2, failureRate: 0.5, slowRate: 0.5 });
  });

  it('slides: an outcome stops counting once its bucket leaves the window', () => {
    // Ten buckets of 1s: the failure at 1.5s lives in the bucket [1s, 2s).
    expect(bucketsPerWindow).toBe(10);
    const window = new SlidingWindow(10_000);
    window.record(1_500, failed);

    // Still inside the window 9.499s later, the last instant its bucket is one of the ten newest...
    expect(window.rates(10_999).failures).toBe(1);
    // ...and gone at 11s, before a full 10s have passed since it was recorded.
    expect(window.rates(11_000)).toMatchObject({ calls: 0, failures: 0 });
  });

  it('keeps the newer outcomes when the older ones age out', () => {
    const window = new SlidingWindow(10_000);
    window.record(1_000, failed);
    window.record(1_200, failed);
    window.record(6_000, ok);

    expect(window.rates(11_500)).toMatchObject({ calls: 1, failures: 0, failureRate: 0 });
  });

  it('reuses a bucket for a later second without mixing in what it held', () => {
    const window = new SlidingWindow(10_000);
    window.record(1_000, failed);

    // 11s maps onto the same slot of the ring as 1s did.
    window.record(11_000, ok);

    expect(window.rates(11_000)).toMatchObject({ calls: 1, failures: 0 });
  });

  it('does not count outcomes from buckets newer than the time asked about', () => {
    const window = new SlidingWindow(10_000);
    window.record(5_000, failed);

    expect(window.rates(4_999).calls).toBe(0);
  });

  it('works from time zero and for windows that do not divide into whole milliseconds', () => {
    const window = new SlidingWindow(15);
    window.record(0, failed);
    window.record(1.4, ok);

    expect(window.rates(1.4)).toMatchObject({ calls: 2, failures: 1 });
    expect(window.rates(15)).toMatchObject({ calls: 0 });
  });

  it('forgets everything on reset', () => {
    const window = new SlidingWindow(10_000);
    window.record(1_000, failed);
    window.record(2_000, slow);

    window.reset();

    expect(window.rates(2_000).calls).toBe(0);
    window.record(2_000, ok);
    expect(window.rates(2_000)).toMatchObject({ calls: 1, failures: 0, slowCalls: 0 });
  });

  it('refuses a window that is not a positive length', () => {
    expect(() => new SlidingWindow(0)).toThrow(RangeError);
    expect(() => new SlidingWindow(Number.NaN)).toThrow(/positive/);
  });
});
