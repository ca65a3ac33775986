import { describe, expect, it } from 'vitest';
import type { BulkheadConfig } from '../../../src/config/types.ts';
import { Bulkheads } from '../../../src/policies/bulkhead/registry.ts';

const config: BulkheadConfig = { maxConcurrent: 2, maxQueued: 1, queueTimeoutMs: 100 };

describe('bulkhead registry', () => {
  it('keeps an upstream bulkhead, with its slots, across a reload that does not change it', () => {
    const bulkheads = new Bulkheads();
    const before = bulkheads.get('payments', config);
    before.tryAcquire();
    const after = bulkheads.get('payments', { ...config });
    expect(after).toBe(before);
    expect(after.snapshot().inFlight).toBe(1);
  });

  it('keeps the slots when only the queue timeout changes', () => {
    const bulkheads = new Bulkheads();
    const before = bulkheads.get('payments', config);
    expect(bulkheads.get('payments', { ...config, queueTimeoutMs: 250 })).toBe(before);
  });

  it('starts a fresh bulkhead when a limit changes', () => {
    const bulkheads = new Bulkheads();
    const before = bulkheads.get('payments', config);
    before.tryAcquire();
    const wider = bulkheads.get('payments', { ...config, maxConcurrent: 5 });
    expect(wider).not.toBe(before);
    expect(wider.snapshot()).toEqual({ inFlight: 0, queued: 0, maxConcurrent: 5, maxQueued: 1 });
    const longerQueue = bulkheads.get('payments', { ...config, maxConcurrent: 5, maxQueued: 4 });
    expect(longerQueue).not.toBe(wider);
  });

  it('gives each upstream its own bulkhead', () => {
    const bulkheads = new Bulkheads();
    expect(bulkheads.get('payments', config)).not.toBe(bulkheads.get('search', config));
  });

  it('forgets upstreams that are not retained', () => {
    const bulkheads = new Bulkheads();
    const payments = bulkheads.get('payments', config);
    const search = bulkheads.get('search', config);
    bulkheads.retain(['search']);
    expect(bulkheads.snapshot().map((entry) => entry.upstream)).toEqual(['search']);
    expect(bulkheads.get('search', config)).toBe(search);
    expect(bulkheads.get('payments', config)).not.toBe(payments);
  });

  it('reports the occupancy of every bulkhead for the gauges', () => {
    const bulkheads = new Bulkheads();
    const payments = bulkheads.get('payments', { maxConcurrent: 1, maxQueued: 2, queueTimeoutMs: 100 });
    bulkheads.get('search', config);
    payments.tryAcquire();
    payments.tryAcquire();
    expect(bulkheads.snapshot()).toEqual([
      { upstream: 'payments', inFlight: 1, queued: 1, maxConcurrent: 1, maxQueued: 2 },
      { upstream: 'search', inFlight: 0, queued: 0, maxConcurrent: 2, maxQueued: 1 },
    ]);
  });
});
