import { describe, expect, it } from 'vitest';
import type { PolicyEvent } from '../../src/policies/events.ts';
import { attemptTimeoutLayer } from '../../src/policies/timeout/layer.ts';
import { ProxyError } from '../../src/proxy/errors.ts';
import { FakeClock, flushMicrotasks } from '../support/fake-clock.ts';
import { hanging, proxyRequest, scripted } from '../support/handlers.ts';

function setup(perTryTimeoutMs: number | undefined) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const layer = attemptTimeoutLayer(perTryTimeoutMs, { clock, events: { emit: (event) => events.push(event) } });
  return { clock, events, layer };
}

describe('per-try timeout', () => {
  it('cancels an attempt that has no response head within the per-try timeout', async () => {
    const { clock, events, layer } = setup(200);
    const upstream = hanging();
    const request = proxyRequest({ deadlineAt: 5_000 });
    const outcome = layer(upstream)(request).catch((error: unknown) => error);
    // The attempt announces its own bound, not the whole deadline.
    expect(request.attemptDeadlineAt).toBe(1_200);
    clock.advance(199);
    await flushMicrotasks();
    expect(events).toEqual([]);
    clock.advance(1);
    const error = (await outcome) as ProxyError;
    expect(error.reason).toBe('timeout');
    expect(error.attemptFailure).toBe('timeout');
    expect(events).toEqual([{ type: 'per-try-timeout', route: 'test-route', upstream: 'test-upstream' }]);
  });

  it('stops its timer once the response head arrives', async () => {
    const { clock, layer } = setup(200);
    const response = await layer(scripted(200))(proxyRequest({ deadlineAt: 5_000 }));
    expect(response.status).toBe(200);
    expect(clock.pending).toBe(0);
  });

  it('leaves the attempt to the deadline when the per-try timeout is longer than what is left', async () => {
    const { clock, layer } = setup(10_000);
    const request = proxyRequest({ deadlineAt: 1_300 });
    await layer(scripted(200))(request);
    expect(request.attemptDeadlineAt).toBe(1_300);
    expect(clock.pending).toBe(0);
  });

  it('uses the deadline when no per-try timeout is set', async () => {
    const { layer } = setup(undefined);
    const request = proxyRequest({ deadlineAt: 9_000, attemptDeadlineAt: 0 });
    await layer(scripted(204))(request);
    expect(request.attemptDeadlineAt).toBe(9_000);
  });

  it('refuses to start an attempt once the deadline is spent, without calling the upstream', async () => {
    const { events, layer } = setup(200);
    const upstream = scripted(200);
    const error = (await layer(upstream)(proxyRequest({ deadlineAt: 1_000 })).catch((e: unknown) => e)) as ProxyError;
    expect(error).toBeInstanceOf(ProxyError);
    expect(error.reason).toBe('deadline_exceeded');
    expect(upstream.calls).toHaveLength(0);
    expect(events).toEqual([{ type: 'deadline-exceeded', route: 'test-route', upstream: 'test-upstream', stage: 'attempt' }]);
  });
});
