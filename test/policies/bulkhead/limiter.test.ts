import { describe, expect, it } from 'vitest';
import { Bulkhead, type Waiter } from '../../../src/policies/bulkhead/limiter.ts';

function queuedWaiter(bulkhead: Bulkhead): Waiter {
  const acquisition = bulkhead.tryAcquire();
  if (acquisition.kind !== 'queued') throw new Error(`expected to queue, got ${acquisition.kind}`);
  return acquisition.waiter;
}

describe('bulkhead limiter', () => {
  it('admits up to maxConcurrent, queues up to maxQueued, then refuses', () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 2, maxQueued: 1 });
    expect(bulkhead.tryAcquire().kind).toBe('acquired');
    expect(bulkhead.tryAcquire().kind).toBe('acquired');
    expect(bulkhead.tryAcquire().kind).toBe('queued');
    expect(bulkhead.tryAcquire().kind).toBe('rejected');
    expect(bulkhead.snapshot()).toEqual({ inFlight: 2, queued: 1, maxConcurrent: 2, maxQueued: 1 });
  });

  it('refuses at once when there is no queue', () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 0 });
    expect(bulkhead.tryAcquire().kind).toBe('acquired');
    expect(bulkhead.tryAcquire().kind).toBe('rejected');
    expect(bulkhead.snapshot()).toEqual({ inFlight: 1, queued: 0, maxConcurrent: 1, maxQueued: 0 });
  });

  it('hands each released slot to the oldest waiter, in arrival order', () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 3 });
    bulkhead.tryAcquire();
    const first = queuedWaiter(bulkhead);
    const second = queuedWaiter(bulkhead);
    const third = queuedWaiter(bulkhead);

    expect(bulkhead.release()).toBe(first);
    expect(bulkhead.release()).toBe(second);
    expect(bulkhead.release()).toBe(third);
    // The slot passed from hand to hand: still one in flight, nobody waiting.
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 1, queued: 0 });

    expect(bulkhead.release()).toBeUndefined();
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 0, queued: 0 });
  });

  it('skips waiters that gave up, and frees their place in the queue', () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 2 });
    bulkhead.tryAcquire();
    const gaveUp = queuedWaiter(bulkhead);
    const stays = queuedWaiter(bulkhead);
    expect(bulkhead.tryAcquire().kind).toBe('rejected');

    expect(bulkhead.cancel(gaveUp)).toBe(true);
    expect(bulkhead.snapshot()).toMatchObject({ queued: 1 });
    // Its place is free for a newcomer, who queues behind the one that stayed.
    const newcomer = queuedWaiter(bulkhead);

    expect(bulkhead.release()).toBe(stays);
    expect(bulkhead.release()).toBe(newcomer);
  });

  it('reports a waiter that is no longer queued when asked to cancel it', () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 1 });
    bulkhead.tryAcquire();
    const waiter = queuedWaiter(bulkhead);
    expect(bulkhead.release()).toBe(waiter);
    // Woken already: cancelling now must not touch the slot it holds.
    expect(bulkhead.cancel(waiter)).toBe(false);
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 1, queued: 0 });
  });

  it('gives a freed slot to the next request when nobody waits', () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 0 });
    bulkhead.tryAcquire();
    bulkhead.release();
    expect(bulkhead.tryAcquire().kind).toBe('acquired');
  });

  it('refuses a release with no slot held, so a double release cannot inflate capacity', () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 0 });
    expect(() => bulkhead.release()).toThrow(/released more often than acquired/);
    bulkhead.tryAcquire();
    bulkhead.release();
    expect(() => bulkhead.release()).toThrow(/released more often than acquired/);
  });

  it('keeps two bulkheads apart', () => {
    const payments = new Bulkhead({ maxConcurrent: 1, maxQueued: 0 });
    const search = new Bulkhead({ maxConcurrent: 1, maxQueued: 0 });
    expect(payments.tryAcquire().kind).toBe('acquired');
    expect(payments.tryAcquire().kind).toBe('rejected');
    expect(search.tryAcquire().kind).toBe('acquired');
    expect(search.snapshot()).toMatchObject({ inFlight: 1 });
    expect(payments.snapshot()).toMatchObject({ inFlight: 1 });
  });
});
