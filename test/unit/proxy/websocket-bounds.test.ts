import { describe, expect, it } from 'vitest';
import { checkTunnel } from '../../../src/proxy/websocket/bounds.ts';

const openedAt = 1_000;

describe('the bounds of a WebSocket tunnel', () => {
  it('is idle once no byte has passed for idleTimeout, counted from the last byte', () => {
    const bounds = { idleTimeoutMs: 300, maxDurationMs: 0 };
    expect(checkTunnel(bounds, openedAt, openedAt, openedAt)).toEqual({ kind: 'open', checkAt: 1_300 });
    // A byte at 1 200 moves the idle end to 1 500.
    expect(checkTunnel(bounds, openedAt, 1_200, 1_300)).toEqual({ kind: 'open', checkAt: 1_500 });
    expect(checkTunnel(bounds, openedAt, 1_200, 1_499)).toEqual({ kind: 'open', checkAt: 1_500 });
    expect(checkTunnel(bounds, openedAt, 1_200, 1_500)).toEqual({ kind: 'expired', bound: 'idle_timeout' });
  });

  it('ends at maxDuration from its opening, however busy it is', () => {
    const bounds = { idleTimeoutMs: 0, maxDurationMs: 5_000 };
    expect(checkTunnel(bounds, openedAt, 5_900, 5_999)).toEqual({ kind: 'open', checkAt: 6_000 });
    expect(checkTunnel(bounds, openedAt, 5_999, 6_000)).toEqual({ kind: 'expired', bound: 'max_duration' });
  });

  it('looks again at whichever bound comes first', () => {
    const bounds = { idleTimeoutMs: 300, maxDurationMs: 1_000 };
    expect(checkTunnel(bounds, openedAt, 1_100, 1_100)).toEqual({ kind: 'open', checkAt: 1_400 });
    expect(checkTunnel(bounds, openedAt, 1_800, 1_800)).toEqual({ kind: 'open', checkAt: 2_000 });
  });

  it('names maxDuration when both bounds have run out', () => {
    expect(checkTunnel({ idleTimeoutMs: 300, maxDurationMs: 1_000 }, openedAt, openedAt, 2_000)).toEqual({ kind: 'expired', bound: 'max_duration' });
  });

  it('never ends with both bounds 0', () => {
    expect(checkTunnel({ idleTimeoutMs: 0, maxDurationMs: 0 }, openedAt, openedAt, 1e12)).toEqual({ kind: 'open', checkAt: undefined });
  });
});
