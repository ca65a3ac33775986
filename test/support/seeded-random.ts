import type { Random } from '../../src/runtime/random.ts';

export { seededRandom } from '../../src/runtime/random.ts';

/** A Random that returns the given values in turn, for exact assertions. */
export function fixedRandom(...values: number[]): Random {
  let index = 0;
  return () => values[index++ % values.length]!;
}
