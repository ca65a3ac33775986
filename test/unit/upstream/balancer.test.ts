import { describe, expect, it } from 'vitest';
import { createBalancer, leastRequest, roundRobin } from '../../../src/upstream/balancer.ts';

function endpoints(...inFlight: number[]) {
  return inFlight.map((count, index) => ({ id: index, inFlight: count }));
}

/** A Random that returns the given values in turn. */
function sequence(...values: number[]) {
  let index = 0;
  return () => values[index++ % values.length]!;
}

describe('round-robin', () => {
  it('visits every endpoint in turn', () => {
    const pick = roundRobin<{ id: number; inFlight: number }>();
    const list = endpoints(0, 0, 0);
    expect([1, 2, 3, 4, 5, 6].map(() => pick(list).id)).toEqual([0, 1, 2, 0, 1, 2]);
  });
});

describe('least-request (power of two choices)', () => {
  it('picks the less loaded of the two endpoints drawn', () => {
    // Draws endpoint 0, then the second draw lands on endpoint 2.
    const pick = leastRequest<{ id: number; inFlight: number }>(sequence(0, 0.75));
    expect(pick(endpoints(5, 0, 1)).id).toBe(2);
    expect(pick(endpoints(0, 0, 9)).id).toBe(0);
  });

  it('never draws the same endpoint twice', () => {
    const pick = leastRequest<{ id: number; inFlight: number }>(sequence(0.99, 0.99));
    // First draw: endpoint 1 of 2; second must be endpoint 0, the less loaded one.
    expect(pick(endpoints(0, 3)).id).toBe(0);
  });

  it('sends most traffic away from a loaded endpoint', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = createBalancer<{ id: number; inFlight: number }>('least-request', random);
    const list = endpoints(10, 0, 0, 0);
    const hits = [0, 0, 0, 0];
    for (let i = 0; i < 1000; i++) hits[pick(list).id]! += 1;
    expect(hits[0]).toBe(0);
  });

  it('returns the only endpoint there is', () => {
    const pick = createBalancer<{ id: number; inFlight: number }>('least-request', Math.random);
    expect(pick(endpoints(3)).id).toBe(0);
  });
});

describe('a retry or hedge of the same request', () => {
  it('goes to an endpoint not yet tried while one remains, with either balancer', () => {
    const list = endpoints(0, 0, 0);
    const roundRobinPick = roundRobin<{ id: number; inFlight: number }>();
    expect(roundRobinPick(list, [list[0]!, list[1]!]).id).toBe(2);
    // Least-request among the untried only, however loaded the tried one is not.
    const leastPick = leastRequest<{ id: number; inFlight: number }>(sequence(0, 0.99));
    const loaded = endpoints(0, 5, 9);
    expect(leastPick(loaded, [loaded[0]!]).id).toBe(1);
  });

  it('falls back to every endpoint once all were tried', () => {
    const list = endpoints(0, 0);
    const pick = roundRobin<{ id: number; inFlight: number }>();
    expect([pick(list, list).id, pick(list, list).id]).toEqual([0, 1]);
  });
});
