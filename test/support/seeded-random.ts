import type { Random } from '../../src/runtime/random.ts';

/** A deterministic Random (mulberry32): the same seed gives the same sequence. */
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

/** A Random that returns the given values in turn, for exact assertions. */
export function fixedRandom(...values: number[]): Random {
  let index = 0;
  return () => values[index++ % values.length]!;
}
