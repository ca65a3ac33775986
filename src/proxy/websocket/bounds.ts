// The bounds of an open tunnel, pure: told when it opened, when a byte last passed and the time
// now, it says whether the tunnel has outlived a bound, and otherwise when to look again. The
// tunnel arms one timer for that instant instead of restarting one on every chunk.

import type { WebSocketConfig } from '../../config/types.ts';

export type TunnelCheck =
  | { readonly kind: 'expired'; readonly bound: 'idle_timeout' | 'max_duration' }
  /** `checkAt`: when a bound could next run out; undefined when none can. */
  | { readonly kind: 'open'; readonly checkAt: number | undefined };

/** Times are monotonic milliseconds; a bound of 0 is none. */
export function checkTunnel(bounds: WebSocketConfig, openedAt: number, lastActivityAt: number, now: number): TunnelCheck {
  const endsAt = bounds.maxDurationMs > 0 ? openedAt + bounds.maxDurationMs : undefined;
  const idleAt = bounds.idleTimeoutMs > 0 ? lastActivityAt + bounds.idleTimeoutMs : undefined;
  if (endsAt !== undefined && now >= endsAt) return { kind: 'expired', bound: 'max_duration' };
  if (idleAt !== undefined && now >= idleAt) return { kind: 'expired', bound: 'idle_timeout' };
  if (endsAt === undefined) return { kind: 'open', checkAt: idleAt };
  return { kind: 'open', checkAt: idleAt === undefined ? endsAt : Math.min(idleAt, endsAt) };
}
