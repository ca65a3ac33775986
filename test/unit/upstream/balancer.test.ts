import { describe, expect, it } from 'vitest';
import { createBalancer, leastRequest, peakEwma, roundRobin } from '../../../src/upstream/balancer.ts';
import { PeakEwma } from '../../../src/upstream/ewma.ts';
import { FakeClock } from '../../support/fake-clock.ts';

function endpoints(...inFlight: number[]) {
  return inFlight.map((count, index) => ({ id: index, inFlight: count, latency: new PeakEwma(0) }));
}

type Test = ReturnType<typeof endpoints>[number];

/** A Random that returns the given values in turn. */
function sequence(...values: number[]) {
  let index = 0;
  return () => values[index++ % values.length]!;
}

describe('round-robin', () => {
  it('visits every endpoint in turn', () => {
    const pick = roundRobin<Test>();
    const list = endpoints(0, 0, 0);
    expect([1, 2, 3, 4, 5, 6].map(() => pick(list).id)).toEqual([0, 1, 2, 0, 1, 2]);
  });
});

describe('least-request (power of two choices)', () => {
  it('picks the less loaded of the two endpoints drawn', () => {
    // Draws endpoint 0, then the second draw lands on endpoint 2.
    const pick = leastRequest<Test>(sequence(0, 0.75));
    expect(pick(endpoints(5, 0, 1)).id).toBe(2);
    expect(pick(endpoints(0, 0, 9)).id).toBe(0);
  });

  it('never draws the same endpoint twice', () => {
    const pick = leastRequest<Test>(sequence(0.99, 0.99));
    // First draw: endpoint 1 of 2; second must be endpoint 0, the less loaded one.
    expect(pick(endpoints(0, 3)).id).toBe(0);
  });

  it('sends most traffic away from a loaded endpoint', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = createBalancer<Test>('least-request', random, new FakeClock());
    const list = endpoints(10, 0, 0, 0);
    const hits = [0, 0, 0, 0];
    for (let i = 0; i < 1000; i++) hits[pick(list).id]! += 1;
    expect(hits[0]).toBe(0);
  });

  it('returns the only endpoint there is', () => {
    const pick = createBalancer<Test>('least-request', Math.random, new FakeClock());
    expect(pick(endpoints(3)).id).toBe(0);
  });
});

describe('peak-ewma (power of two choices by latency × load)', () => {
  it('picks the faster of two idle endpoints', () => {
    const clock = new FakeClock(0);
    const list = endpoints(0, 0);
    list[0]!.latency.observe(200, 0);
    list[1]!.latency.observe(5, 0);
    const pick = peakEwma<Test>(sequence(0, 0.5), clock);
    expect(pick(list).id).toBe(1);
  });

  it('lets an idle slower endpoint win over a fast one with many requests in flight', () => {
    const clock = new FakeClock(0);
    // 10 ms with 9 in flight costs 100; 40 ms idle costs 40.
    const list = endpoints(9, 0);
    list[0]!.latency.observe(10, 0);
    list[1]!.latency.observe(40, 0);
    const pick = peakEwma<Test>(sequence(0, 0.5), clock);
    expect(pick(list).id).toBe(1);
  });

  it('takes new endpoints at the default 30 ms, and goes back to a slow one once its estimate has faded', () => {
    const clock = new FakeClock(0);
    const list = endpoints(0, 0);
    list[0]!.latency.observe(300, 0);
    const pick = peakEwma<Test>(sequence(0, 0.5), clock);
    expect(pick(list).id).toBe(1);
    // Both fade at the same pace, so the slow one stays the dearer while neither is heard from...
    clock.advance(30_000);
    expect(pick(list).id).toBe(1);
    // ...and the fast one, answering, keeps its estimate near its answers while the slow one's fades below it.
    list[1]!.latency.observe(30, 30_000);
    clock.advance(30_000);
    list[1]!.latency.observe(30, 60_000);
    expect(list[0]!.latency.estimate(60_000)).toBeLessThan(list[1]!.latency.estimate(60_000));
    expect(pick(list).id).toBe(0);
  });

  it('is what createBalancer gives for peak-ewma', () => {
    const clock = new FakeClock(0);
    const list = endpoints(0, 0);
    list[0]!.latency.observe(100, 0);
    expect(createBalancer<Test>('peak-ewma', sequence(0, 0.5), clock)(list).id).toBe(1);
    expect(createBalancer<Test>('peak-ewma', sequence(0, 0.5), clock)([list[0]!]).id).toBe(0);
  });
});

describe('a retry or hedge of the same request', () => {
  it('goes to an endpoint not yet tried while one remains, with every balancer', () => {
    const list = endpoints(0, 0, 0);
    const roundRobinPick = roundRobin<Test>();
    expect(roundRobinPick(list, [list[0]!, list[1]!]).id).toBe(2);
    // Least-request among the untried only, however loaded the tried one is not.
    const leastPick = leastRequest<Test>(sequence(0, 0.99));
    const loaded = endpoints(0, 5, 9);
    expect(leastPick(loaded, [loaded[0]!]).id).toBe(1);
    // Peak-EWMA among the untried only, however fast the tried one is.
    const clock = new FakeClock(0);
    const timed = endpoints(0, 0, 0);
    timed[1]!.latency.observe(500, 0);
    timed[2]!.latency.observe(900, 0);
    expect(peakEwma<Test>(sequence(0, 0.99), clock)(timed, [timed[0]!]).id).toBe(1);
  });

  it('falls back to every endpoint once all were tried', () => {
    const list = endpoints(0, 0);
    const pick = roundRobin<Test>();
    expect([pick(list, list).id, pick(list, list).id]).toEqual([0, 1]);
  });
});
