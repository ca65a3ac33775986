// A bulkhead's bookkeeping: how many requests hold a slot and who waits for one, in arrival
// order. No timers and no promises: the layer decides how long a waiter waits and wakes the
// waiter that release() names.

/** One queued request: a token the limiter makes and the layer keeps, to cancel or wake it. */
export type Waiter = object;

export type Acquisition =
  | { readonly kind: 'acquired' }
  | { readonly kind: 'queued'; readonly waiter: Waiter }
  | { readonly kind: 'rejected' };

export interface BulkheadSnapshot {
  readonly inFlight: number;
  readonly queued: number;
  readonly maxConcurrent: number;
  readonly maxQueued: number;
}

export interface BulkheadLimits {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
}

const acquired: Acquisition = { kind: 'acquired' };
const rejected: Acquisition = { kind: 'rejected' };

/** A concurrency limit with a bounded first-in, first-out wait queue. */
export class Bulkhead {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  #inFlight = 0;
  // A Set keeps insertion order and deletes in constant time: the oldest waiter is its first
  // entry, and a waiter that gives up leaves no hole behind.
  readonly #waiters = new Set<Waiter>();

  constructor(limits: BulkheadLimits) {
    this.maxConcurrent = limits.maxConcurrent;
    this.maxQueued = limits.maxQueued;
  }

  /** Takes a free slot, else a place in the queue, else refuses. */
  tryAcquire(): Acquisition {
    // A free slot never coexists with waiters: release() hands slots to them first.
    if (this.#inFlight < this.maxConcurrent) {
      this.#inFlight += 1;
      return acquired;
    }
    if (this.#waiters.size < this.maxQueued) {
      const waiter: Waiter = {};
      this.#waiters.add(waiter);
      return { kind: 'queued', waiter };
    }
    return rejected;
  }

  /**
   * Gives a slot back. When someone waits, the slot passes straight to the oldest waiter,
   * which is returned so the caller can wake it; otherwise the slot becomes free.
   */
  release(): Waiter | undefined {
    if (this.#inFlight === 0) throw new Error('bulkhead released more often than acquired');
    for (const waiter of this.#waiters) {
      this.#waiters.delete(waiter);
      return waiter;
    }
    this.#inFlight -= 1;
    return undefined;
  }

  /** Removes a waiter that stops waiting. False when it is no longer queued (already woken or cancelled). */
  cancel(waiter: Waiter): boolean {
    return this.#waiters.delete(waiter);
  }

  snapshot(): BulkheadSnapshot {
    return { inFlight: this.#inFlight, queued: this.#waiters.size, maxConcurrent: this.maxConcurrent, maxQueued: this.maxQueued };
  }
}
