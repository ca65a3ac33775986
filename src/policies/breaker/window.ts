// A sliding time window of call outcomes kept in a fixed ring of buckets, so a breaker's
// memory stays the same however many calls pass through it. Outcomes age out one bucket at a
// time: with ten buckets, an outcome stops counting between 90% and 100% of the window after
// it was recorded (opossum's rolling window works the same way).

/** Buckets per window. */
export const bucketsPerWindow = 10;

/** One call as the breaker judges it. */
export interface JudgedCall {
  /** The call failed, as the breaker's `failOn` defines failure. */
  readonly failed: boolean;
  /** The call took longer than the breaker's `slowCallDuration`. */
  readonly slow: boolean;
}

export interface WindowRates {
  readonly calls: number;
  readonly failures: number;
  readonly slowCalls: number;
  /** failures / calls; 0 when the window is empty. */
  readonly failureRate: number;
  /** slowCalls / calls; 0 when the window is empty. */
  readonly slowRate: number;
}

export class SlidingWindow {
  readonly #bucketMs: number;
  // Bucket i covers [i * bucketMs, (i + 1) * bucketMs) and lives in slot i mod bucketsPerWindow;
  // #indexes says which bucket a slot holds now, so a stale slot is recognised and reused.
  readonly #indexes = new Array<number>(bucketsPerWindow).fill(Number.NEGATIVE_INFINITY);
  readonly #calls = new Array<number>(bucketsPerWindow).fill(0);
  readonly #failures = new Array<number>(bucketsPerWindow).fill(0);
  readonly #slowCalls = new Array<number>(bucketsPerWindow).fill(0);

  constructor(windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError(`a sliding window needs a positive length, got ${windowMs} ms`);
    this.#bucketMs = windowMs / bucketsPerWindow;
  }

  record(now: number, call: JudgedCall): void {
    const index = Math.floor(now / this.#bucketMs);
    const slot = slotOf(index);
    if (this.#indexes[slot] !== index) {
      this.#indexes[slot] = index;
      this.#calls[slot] = 0;
      this.#failures[slot] = 0;
      this.#slowCalls[slot] = 0;
    }
    this.#calls[slot]! += 1;
    if (call.failed) this.#failures[slot]! += 1;
    if (call.slow) this.#slowCalls[slot]! += 1;
  }

  rates(now: number): WindowRates {
    const newest = Math.floor(now / this.#bucketMs);
    let calls = 0;
    let failures = 0;
    let slowCalls = 0;
    for (let slot = 0; slot < bucketsPerWindow; slot++) {
      const index = this.#indexes[slot]!;
      if (index > newest - bucketsPerWindow && index <= newest) {
        calls += this.#calls[slot]!;
        failures += this.#failures[slot]!;
        slowCalls += this.#slowCalls[slot]!;
      }
    }
    return {
      calls,
      failures,
      slowCalls,
      failureRate: calls === 0 ? 0 : failures / calls,
      slowRate: calls === 0 ? 0 : slowCalls / calls,
    };
  }

  /** Forgets every outcome. */
  reset(): void {
    this.#indexes.fill(Number.NEGATIVE_INFINITY);
  }
}

function slotOf(index: number): number {
  return ((index % bucketsPerWindow) + bucketsPerWindow) % bucketsPerWindow;
}
