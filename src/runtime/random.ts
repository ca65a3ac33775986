/** A source of uniform numbers in [0, 1). Cores take one so tests can seed it. */
export type Random = () => number;

export const systemRandom: Random = Math.random;

/**
 * A deterministic Random (mulberry32): the same seed gives the same sequence, for tests and
 * for benchmarks that must draw the same faults on every run.
 */
export function seededRandom(seed = 1): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
