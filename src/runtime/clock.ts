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
    // A timer fires after the I/O of the loop turn in which it falls due, not before it: when
    // the process was held up (a long garbage collection, a starved CPU) past a per-try
    // timeout or a hedge delay, an answer that arrived meanwhile is read first, and cancels
    // the timer, instead of being cut by a timeout that only the pause made fall due.
    let immediate: NodeJS.Immediate | undefined;
    const timer = setTimeout(() => {
      immediate = setImmediate(fire);
    }, ms);
    return () => {
      clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
    };
  },
};
