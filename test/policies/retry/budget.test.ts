import { describe, expect, it } from 'vitest';
import { RetryBudget, type BudgetConfig } from '../../../src/policies/retry/budget.ts';

const linkerdDefaults: BudgetConfig = { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 };

/**
 * Sends `requests` requests, evenly spaced from `startMs` over `spanMs`, to an upstream that
 * fails every attempt; each is retried until maxAttempts or the budget says no. Returns the
 * attempts the upstream received.
 */
function outage(budget: RetryBudget, requests: number, startMs: number, spanMs: number, maxAttempts = 5): number {
  let calls = 0;
  for (let i = 0; i < requests; i++) {
    const now = startMs + Math.floor((i * spanMs) / requests);
    budget.recordRequest(now);
    calls += 1;
    for (let attempt = 2; attempt <= maxAttempts && budget.tryWithdraw(now); attempt++) calls += 1;
  }
  return calls;
}

describe('retry budget', () => {
  it('caps attempts within one window at requests × (1 + ratio) + minPerSecond × window', () => {
    const budget = new RetryBudget(linkerdDefaults);
    const requests = 200;
    const calls = outage(budget, requests, 0, 9_000);
    const bound = requests * (1 + linkerdDefaults.ratio) + linkerdDefaults.minPerSecond * (linkerdDefaults.windowMs / 1_000);
    expect(calls).toBeLessThanOrEqual(bound);
    // The budget is spent in full, not under-granted: every retry it allows is taken.
    expect(calls).toBe(bound);
  });

  it('lets maxAttempts bind first when the budget is larger', () => {
    const budget = new RetryBudget(linkerdDefaults);
    // 10 requests × 4 retries = 40 retries, below the 100 the floor alone allows.
    expect(outage(budget, 10, 0, 1_000)).toBe(50);
  });

  it('keeps the extra load of a long outage near ratio × load + minPerSecond', () => {
    const budget = new RetryBudget(linkerdDefaults);
    const perSecond = 50;
    const seconds = 60;
    const calls = outage(budget, perSecond * seconds, 0, seconds * 1_000);
    const retries = calls - perSecond * seconds;
    const windows = seconds / (linkerdDefaults.windowMs / 1_000);
    const perWindow = linkerdDefaults.ratio * perSecond * 10 + linkerdDefaults.minPerSecond * 10;
    expect(retries).toBeLessThanOrEqual(windows * perWindow);
    // Without a budget, maxAttempts 5 would send 4 retries per request.
    expect(retries).toBeGreaterThan(perWindow);
  });

  it('grants ratio × requests when there is no floor', () => {
    const budget = new RetryBudget({ ratio: 0.5, minPerSecond: 0, windowMs: 10_000 });
    expect(budget.tryWithdraw(0)).toBe(false);
    budget.recordRequest(0);
    budget.recordRequest(0);
    expect(budget.tryWithdraw(0)).toBe(true);
    expect(budget.tryWithdraw(0)).toBe(false);
  });

  it('grants the floor to a quiet upstream', () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 5_000 });
    const granted = Array.from({ length: 8 }, () => budget.tryWithdraw(0)).filter(Boolean).length;
    expect(granted).toBe(5);
  });

  it('does not lose a retry to rounding in ratio × requests', () => {
    const budget = new RetryBudget({ ratio: 0.29, minPerSecond: 0, windowMs: 10_000 });
    for (let i = 0; i < 100; i++) budget.recordRequest(0);
    const granted = Array.from({ length: 40 }, () => budget.tryWithdraw(0)).filter(Boolean).length;
    expect(granted).toBe(29);
  });

  it('refills as the window slides past the retries it spent', () => {
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 1, windowMs: 10_000 });
    // Spend the floor of 10 retries at t=0.
    for (let i = 0; i < 10; i++) expect(budget.tryWithdraw(0)).toBe(true);
    expect(budget.tryWithdraw(0)).toBe(false);
    // Still spent until the bucket holding them leaves the window.
    expect(budget.tryWithdraw(9_999)).toBe(false);
    // The window has moved past t=0: the whole floor is back.
    for (let i = 0; i < 10; i++) expect(budget.tryWithdraw(10_000)).toBe(true);
    expect(budget.tryWithdraw(10_000)).toBe(false);
  });

  it('refills a bucket at a time', () => {
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 1, windowMs: 10_000 });
    // One retry in each of the ten buckets of the window.
    for (let second = 0; second < 10; second++) expect(budget.tryWithdraw(second * 1_000)).toBe(true);
    expect(budget.tryWithdraw(9_500)).toBe(false);
    // Each second, the oldest bucket (and its one retry) leaves the window.
    expect(budget.tryWithdraw(10_000)).toBe(true);
    expect(budget.tryWithdraw(10_500)).toBe(false);
    expect(budget.tryWithdraw(11_000)).toBe(true);
  });

  it('forgets requests that left the window', () => {
    const budget = new RetryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1_000 });
    for (let i = 0; i < 5; i++) budget.recordRequest(0);
    expect(budget.tryWithdraw(500)).toBe(true);
    // A window later, neither the requests nor the retry count.
    expect(budget.tryWithdraw(1_500)).toBe(false);
    budget.recordRequest(1_500);
    expect(budget.tryWithdraw(1_500)).toBe(true);
  });
});
