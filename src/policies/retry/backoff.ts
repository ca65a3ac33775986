import type { BackoffConfig } from '../../config/types.ts';
import type { Random } from '../../runtime/random.ts';

// The switches below have no default: the compiler checks they cover every type and jitter.

/** The delay before jitter: what the backoff type asks for, capped at `maxMs`. */
function growth(config: BackoffConfig, retryNumber: number): number {
  switch (config.type) {
    case 'none':
      return 0;
    case 'fixed':
      return Math.min(config.maxMs, config.baseMs);
    case 'linear':
      return Math.min(config.maxMs, config.baseMs * retryNumber);
    case 'exponential':
      // The exponent is bounded so 2^n stays finite: 0 × Infinity would be NaN with a 0ms base.
      return Math.min(config.maxMs, config.baseMs * 2 ** Math.min(retryNumber - 1, 1023));
  }
}

/**
 * The wait before retry number `retryNumber` (1 for the first retry), in ms, never above
 * `maxMs`:
 * - none: 0; fixed: base; linear: base × n; exponential: base × 2^(n−1);
 * - jitter none: that delay d; full: uniform in [0, d); equal: d/2 + uniform in [0, d/2);
 * - decorrelated (AWS): min(max, uniform in [base, 3 × previous)), where `previousDelayMs`
 *   is the delay this jitter returned for the retry before (the caller passes base for the
 *   first). It replaces the type's growth, except that type none still retries at once.
 */
export function backoffDelay(config: BackoffConfig, retryNumber: number, previousDelayMs: number, random: Random): number {
  switch (config.jitter) {
    case 'none':
      return growth(config, retryNumber);
    case 'full':
      return growth(config, retryNumber) * random();
    case 'equal': {
      const delay = growth(config, retryNumber);
      return delay / 2 + (delay / 2) * random();
    }
    case 'decorrelated': {
      if (config.type === 'none') return 0;
      const upper = Math.max(config.baseMs, previousDelayMs * 3);
      return Math.min(config.maxMs, config.baseMs + (upper - config.baseMs) * random());
    }
  }
}
