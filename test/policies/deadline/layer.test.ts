import { describe, expect, it } from 'vitest';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { LatencyWindow } from '../../../src/policies/deadline/latency.ts';
import { attemptTimeoutLayer } from '../../../src/policies/deadline/layer.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.ts';
import { abortListeners, abortRequest, call, hanging, proxyRequest, scopeOf, scripted } from '../../support/handlers.ts';

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
    const outcome = call(layer(upstream), request).catch((error: unknown) => error);
    // The attempt runs in a scope of its own, due at its own bound, not at the whole deadline.
    expect(upstream.scopes[0]!.dueAt).toBe(1_200);
    expect(upstream.scopes[0]).not.toBe(scopeOf(request));
    clock.advance(199);
    await flushMicrotasks();
    expect(events).toEqual([]);
    clock.advance(1);
    const error = (await outcome) as ProxyError;
    expect(error.reason).toBe('timeout');
    expect(error.attemptFailure).toBe('timeout');
    expect(events).toEqual([{ type: 'per-try-timeout', route: 'test-route', upstream: 'test-upstream' }]);
    // Only the attempt was cancelled; the request goes on, and nothing still follows it.
    expect(scopeOf(request).signal.aborted).toBe(false);
    expect(abortListeners(request)).toBe(0);
  });

  it("cancels the attempt when the request's own scope ends first", async () => {
    const { clock, layer } = setup(200);
    const upstream = hanging();
    const request = proxyRequest({ deadlineAt: 5_000 });
    const outcome = call(layer(upstream), request).catch((error: unknown) => error);
    const clientGone = new ProxyError('upstream_unavailable', { message: 'the client closed the connection' });
    abortRequest(request, clientGone);
    expect(await outcome).toBe(clientGone);
    expect(clock.pending).toBe(0);
    expect(abortListeners(request)).toBe(0);
  });

  it("keeps following the request's scope until the attempt's body is over", async () => {
    const { layer } = setup(200);
    const request = proxyRequest({ deadlineAt: 5_000 });
    const made = await call(layer(scripted(200)), request);
    // The head is in, the body not yet streamed: the request ending must still reach the attempt.
    expect(abortListeners(request)).toBe(1);
    made.body.discard();
    expect(abortListeners(request)).toBe(0);
  });

  it('stops its timer once the response head arrives', async () => {
    const { clock, layer } = setup(200);
    const response = await call(layer(scripted(200)), proxyRequest({ deadlineAt: 5_000 }));
    expect(response.status).toBe(200);
    expect(clock.pending).toBe(0);
  });

  it('leaves the attempt to the deadline when the per-try timeout is longer than what is left', async () => {
    const { clock, layer } = setup(10_000);
    const upstream = scripted(200);
    const request = proxyRequest({ deadlineAt: 1_300 });
    await call(layer(upstream), request);
    expect(upstream.scopes[0]).toBe(scopeOf(request));
    expect(upstream.scopes[0]!.dueAt).toBe(1_300);
    expect(clock.pending).toBe(0);
  });

  it('uses the deadline when no per-try timeout is set', async () => {
    const { layer } = setup(undefined);
    const upstream = scripted(204);
    const request = proxyRequest({ deadlineAt: 9_000 });
    await call(layer(upstream), request);
    expect(upstream.scopes[0]!.dueAt).toBe(9_000);
  });

  it('refuses to start an attempt once the deadline is spent, without calling the upstream', async () => {
    const { events, layer } = setup(200);
    const upstream = scripted(200);
    const error = (await call(layer(upstream), proxyRequest({ deadlineAt: 1_000 })).catch((e: unknown) => e)) as ProxyError;
    expect(error).toBeInstanceOf(ProxyError);
    expect(error.reason).toBe('deadline_exceeded');
    expect(upstream.calls).toHaveLength(0);
    expect(events).toEqual([{ type: 'deadline-exceeded', route: 'test-route', upstream: 'test-upstream', stage: 'attempt' }]);
  });
});

describe('adaptive per-try timeout', () => {
  const adaptive = { percentile: 99, multiplier: 1.5, minMs: 20, maxMs: 2_000, minSamples: 10, windowMs: 60_000 };

  it('bounds an attempt by max until enough latencies are known, then by the percentile', async () => {
    const clock = new FakeClock(1_000);
    const window = new LatencyWindow(60_000);
    const layer = attemptTimeoutLayer(adaptive, { clock, events: { emit: () => undefined }, latencies: [window] });
    const upstream = scripted(200);
    await call(layer(upstream), proxyRequest({ deadlineAt: 30_000 }));
    expect(upstream.scopes[0]!.dueAt).toBe(1_000 + 2_000);

    for (let i = 0; i < 20; i++) window.record(100, clock.now());
    clock.advance(1_000);
    await call(layer(upstream), proxyRequest({ deadlineAt: 30_000 }));
    expect(upstream.scopes[1]!.dueAt - clock.now()).toBeCloseTo(150, -1);
  });

  it("feeds the route's window with the attempts that came back well, and only those", async () => {
    const clock = new FakeClock(1_000);
    const window = new LatencyWindow(60_000);
    const layer = attemptTimeoutLayer(undefined, { clock, events: { emit: () => undefined }, latencies: [window] });
    await call(layer(scripted(200)), proxyRequest());
    await call(layer(scripted(503)), proxyRequest());
    await call(layer(scripted('reset')), proxyRequest()).catch(() => undefined);
    expect(window.quantile(0.5, clock.now()).count).toBe(1);
  });
});
