/** A source of uniform numbers in [0, 1). Cores take one so tests can seed it. */
export type Random = () => number;

export const systemRandom: Random = Math.random;
