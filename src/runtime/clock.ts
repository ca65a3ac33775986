// The one owner of real time. Everything else takes a Clock, so tests can drive time by hand
// and the lint rule can forbid timers and Date.now elsewhere.

export interface Clock {
  /** Monotonic milliseconds (not wall time). */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for timestamps users read. */
  wallNow(): number;
  /** Calls `fire` after `ms`; returns a function that cancels it. */
  setTimer(ms: number, fire: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer(ms, fire) {
    const timer = setTimeout(fire, ms);
    return () => clearTimeout(timer);
  },
};
