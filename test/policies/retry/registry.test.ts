import { describe, expect, it } from 'vitest';
import type { BudgetConfig } from '../../../src/policies/retry/budget.ts';
import { budgetKey, RetryBudgets } from '../../../src/policies/retry/registry.ts';

const budget: BudgetConfig = { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 };

describe('retry budgets registry', () => {
  it('returns the same budget for the same upstream and config, across reloads', () => {
    const budgets = new RetryBudgets();
    const first = budgets.get('payments', budget);
    // A reload builds a new config object with the same values.
    expect(budgets.get('payments', { ...budget })).toBe(first);
    expect(budgets.get('orders', budget)).not.toBe(first);
  });

  it('starts a changed budget afresh', () => {
    const budgets = new RetryBudgets();
    const before = budgets.get('payments', budget);
    const after = budgets.get('payments', { ...budget, ratio: 0.1 });
    expect(after).not.toBe(before);
    expect(after.config.ratio).toBe(0.1);
  });

  it('keeps spent state across a reload that keeps the budget', () => {
    const budgets = new RetryBudgets();
    const quiet: BudgetConfig = { ratio: 0, minPerSecond: 1, windowMs: 1_000 };
    expect(budgets.get('payments', quiet).tryWithdraw(0)).toBe(true);
    expect(budgets.get('payments', { ...quiet }).tryWithdraw(0)).toBe(false);
  });

  it('drops the budgets no route uses any more', () => {
    const budgets = new RetryBudgets();
    const kept = budgets.get('payments', budget);
    budgets.get('orders', budget);
    budgets.get('payments', { ...budget, windowMs: 5_000 });
    budgets.retain([budgetKey('payments', budget)]);
    expect(budgets.size).toBe(1);
    expect(budgets.get('payments', budget)).toBe(kept);
  });
});
