import type { FaultConfig } from '../../config/types.ts';
import type { Random } from '../../runtime/random.ts';

/** What to inject into one request: a delay (0 for none), then an abort status (null for none). */
export interface FaultDecision {
  readonly delayMs: number;
  readonly abortStatus: number | null;
}

/** True for `percent` (0..100) of draws: 0 never, 100 always, since draws are in [0, 1). */
function drawn(percent: number, random: Random): boolean {
  return random() < percent / 100;
}

/**
 * Draws the route's faults for one request. Delay and abort are drawn independently, delay
 * first, as Envoy's fault filter does, so one request may be delayed and then aborted. Only a
 * configured fault consumes a draw, which keeps a seeded sequence reproducible per config.
 */
export function decideFault(config: FaultConfig, random: Random): FaultDecision {
  const delayMs = config.delay !== undefined && drawn(config.delay.percent, random) ? config.delay.durationMs : 0;
  const abortStatus = config.abort !== undefined && drawn(config.abort.percent, random) ? config.abort.status : null;
  return { delayMs, abortStatus };
}
