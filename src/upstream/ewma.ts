// An endpoint's latency as peak-EWMA balancing sees it (Finagle's and Linkerd's peak EWMA): an
// exponentially weighted moving average of attempt latencies that jumps to any sample above it
// at once, and forgets with time. Pure: it is told the time.

/** Linkerd's defaults: an endpoint with no sample yet is taken to answer in 30 ms... */
export const defaultRttMs = 30;
/** ...and a sample's weight falls to 1/e after 10 s. */
export const defaultDecayMs = 10_000;

export class PeakEwma {
  readonly #decayMs: number;
  #estimateMs: number;
  #updatedAt: number;

  constructor(now: number, options: { initialMs?: number; decayMs?: number } = {}) {
    this.#estimateMs = options.initialMs ?? defaultRttMs;
    this.#decayMs = options.decayMs ?? defaultDecayMs;
    this.#updatedAt = now;
  }

  /**
   * Takes one attempt's latency. A sample above the estimate replaces it (the peak), so a
   * slowing endpoint is avoided at the first slow answer; one below pulls the estimate down by
   * the weight the time since the last update gives it.
   */
  observe(latencyMs: number, now: number): void {
    const sample = Math.max(0, latencyMs);
    // Time since the last sample fades the estimate as zero-latency samples would, so a
    // sample is a peak when it is above the faded estimate.
    const decay = Math.exp(-Math.max(0, now - this.#updatedAt) / this.#decayMs);
    const faded = this.#estimateMs * decay;
    this.#estimateMs = sample > faded ? sample : faded + sample * (1 - decay);
    this.#updatedAt = Math.max(this.#updatedAt, now);
  }

  /**
   * Takes what is known of an attempt that was called off after `latencyMs` (a hedge that
   * lost, a client that left): it would have taken at least that long. Above the estimate, that
   * is a peak like any other; below it, it says nothing, and the estimate is left alone.
   */
  observeAtLeast(latencyMs: number, now: number): void {
    if (latencyMs <= this.estimate(now)) return;
    this.#estimateMs = latencyMs;
    this.#updatedAt = Math.max(this.#updatedAt, now);
  }

  /**
   * The estimate as of `now`. It decays toward zero while no sample comes, as a zero-latency
   * sample would pull it, so an endpoint avoided for being slow is tried again after a while
   * and its next answer says whether it still is.
   */
  estimate(now: number): number {
    const elapsed = Math.max(0, now - this.#updatedAt);
    return elapsed === 0 ? this.#estimateMs : this.#estimateMs * Math.exp(-elapsed / this.#decayMs);
  }
}

/**
 * What peak-EWMA balancing compares: the latency estimate times the requests in flight plus
 * the one about to be sent, so that among idle endpoints the faster wins, and a fast endpoint
 * that is already busy can lose to a slower idle one.
 */
export function peakEwmaCost(latency: PeakEwma, inFlight: number, now: number): number {
  return latency.estimate(now) * (inFlight + 1);
}
