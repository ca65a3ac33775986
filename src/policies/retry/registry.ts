import { RetryBudget, type BudgetConfig } from './budget.ts';

/**
 * The key of an upstream's budget under a given budget config. Routes to the same upstream
 * with the same budget share one; a changed budget is a new key, so it starts afresh.
 */
export function budgetKey(upstream: string, config: BudgetConfig): string {
  return JSON.stringify([upstream, config.ratio, config.minPerSecond, config.windowMs]);
}

/**
 * The retry budgets of the running config, kept across reloads so a reload does not hand
 * every upstream a full budget in the middle of an outage.
 */
export class RetryBudgets {
  readonly #budgets = new Map<string, RetryBudget>();

  /** The budget of `upstream` under `config`: the existing one, or a fresh one. */
  get(upstream: string, config: BudgetConfig): RetryBudget {
    const key = budgetKey(upstream, config);
    let budget = this.#budgets.get(key);
    if (budget === undefined) {
      budget = new RetryBudget(config);
      this.#budgets.set(key, budget);
    }
    return budget;
  }

  /** Drops every budget whose key (see budgetKey) is not in `keys`. */
  retain(keys: Iterable<string>): void {
    const kept = new Set(keys);
    for (const key of this.#budgets.keys()) {
      if (!kept.has(key)) this.#budgets.delete(key);
    }
  }

  get size(): number {
    return this.#budgets.size;
  }
}
