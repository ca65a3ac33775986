import type { RetryConfig } from '../../config/types.ts';

export type BudgetConfig = RetryConfig['budget'];

/** The window is counted in this many time buckets, so memory stays constant at any rate. */
const bucketCount = 10;

/** Absorbs rounding in ratio × requests (0.29 × 100 is 28.999999999999996). */
const epsilon = 1e-9;

/**
 * An upstream's retry budget, as Linkerd's: over the last `windowMs`, retries may number at
 * most `ratio` × the requests counted plus `minPerSecond` × the window in seconds. A request
 * counts when it arrives; a retry counts when the budget grants it. The window slides one
 * bucket (a tenth of it) at a time. So against an upstream that fails every attempt, the
 * attempts sent within one window stay at or below
 * requests × (1 + ratio) + minPerSecond × window seconds, whatever maxAttempts says.
 */
export class RetryBudget {
  readonly config: BudgetConfig;
  readonly #bucketMs: number;
  /** The bucket number (monotonic ms / bucket length) each slot currently counts. */
  readonly #bucketOf: number[] = new Array<number>(bucketCount).fill(Number.NEGATIVE_INFINITY);
  readonly #requests: number[] = new Array<number>(bucketCount).fill(0);
  readonly #retries: number[] = new Array<number>(bucketCount).fill(0);

  constructor(config: BudgetConfig) {
    this.config = config;
    this.#bucketMs = config.windowMs / bucketCount;
  }

  /** Counts a request (not a retry) to the upstream. */
  recordRequest(now: number): void {
    this.#requests[this.#slot(now)]! += 1;
  }

  /** Takes one retry from the budget and returns true, or returns false when it is spent. */
  tryWithdraw(now: number): boolean {
    const slot = this.#slot(now);
    const current = this.#bucketOf[slot]!;
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < bucketCount; i++) {
      if (this.#bucketOf[i]! > current - bucketCount) {
        requests += this.#requests[i]!;
        retries += this.#retries[i]!;
      }
    }
    const allowed = this.config.ratio * requests + (this.config.minPerSecond * this.config.windowMs) / 1000;
    if (retries + 1 > allowed + epsilon) return false;
    this.#retries[slot]! += 1;
    return true;
  }

  /** The slot of `now`'s bucket, emptied first when it still holds an older bucket. */
  #slot(now: number): number {
    const bucket = Math.floor(now / this.#bucketMs);
    const slot = bucket % bucketCount;
    if (this.#bucketOf[slot] !== bucket) {
      this.#bucketOf[slot] = bucket;
      this.#requests[slot] = 0;
      this.#retries[slot] = 0;
    }
    return slot;
  }
}
