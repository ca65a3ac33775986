import { describe, expect, it } from 'vitest';
import type { FaultConfig } from '../../../src/config/types.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { faultLayer } from '../../../src/policies/fault/layer.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { Random } from '../../../src/runtime/random.ts';
import { FakeClock } from '../../support/fake-clock.ts';
import { abortListeners, abortRequest, call, proxyRequest, scripted, start } from '../../support/handlers.ts';
import { fixedRandom, seededRandom } from '../../support/seeded-random.ts';

function setup(config: FaultConfig, random: Random = seededRandom(1)) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const layer = faultLayer(config, { clock, random, events: { emit: (event) => events.push(event) } });
  return { clock, events, layer };
}

describe('fault injection layer', () => {
  it('answers an injected abort with the configured status and reason, without calling the upstream', async () => {
    const { events, layer } = setup({ abort: { percent: 100, status: 418 } });
    const upstream = scripted(200);
    const outcome = start(layer(upstream));
    await outcome.done;

    expect(outcome.error).toBeInstanceOf(ProxyError);
    expect(outcome.error?.reason).toBe('fault_injected');
    expect(outcome.error?.status).toBe(418);
    expect(upstream.calls).toHaveLength(0);
    expect(events).toEqual([{ type: 'fault-injected', route: 'test-route', kind: 'abort' }]);
  });

  it('passes requests through untouched at 0 percent', async () => {
    const { clock, events, layer } = setup({ delay: { percent: 0, durationMs: 2_000 }, abort: { percent: 0, status: 503 } });
    const upstream = scripted(200);
    const made = await call(layer(upstream), proxyRequest());
    expect(made.status).toBe(200);
    expect(upstream.calls).toHaveLength(1);
    expect(events).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it('holds a delayed request for the configured duration before proxying it', async () => {
    const { clock, events, layer } = setup({ delay: { percent: 100, durationMs: 2_000 } });
    const upstream = scripted(200);
    const outcome = start(layer(upstream));

    await clock.advanceAsync(1_999, 100);
    expect(upstream.calls).toHaveLength(0);
    expect(outcome.settled).toBe(false);
    await clock.advanceAsync(1);
    await outcome.done;

    expect(outcome.response?.status).toBe(200);
    expect(upstream.calls).toHaveLength(1);
    expect(events).toEqual([{ type: 'fault-injected', route: 'test-route', kind: 'delay' }]);
  });

  it('delays first, then aborts, when both faults hit the same request', async () => {
    const { clock, events, layer } = setup({ delay: { percent: 100, durationMs: 500 }, abort: { percent: 100, status: 503 } });
    const upstream = scripted(200);
    const outcome = start(layer(upstream));

    await clock.advanceAsync(499, 50);
    expect(outcome.settled).toBe(false);
    await clock.advanceAsync(1);
    await outcome.done;

    expect(outcome.error?.reason).toBe('fault_injected');
    expect(outcome.error?.status).toBe(503);
    expect(upstream.calls).toHaveLength(0);
    expect(events).toEqual([
      { type: 'fault-injected', route: 'test-route', kind: 'delay' },
      { type: 'fault-injected', route: 'test-route', kind: 'abort' },
    ]);
  });

  it('never delays past the deadline: 504 deadline_exceeded when the deadline comes first', async () => {
    const { clock, events, layer } = setup({ delay: { percent: 100, durationMs: 2_000 } });
    const upstream = scripted(200);
    const outcome = start(layer(upstream), proxyRequest({ deadlineAt: 1_500 }));

    await clock.advanceAsync(499, 50);
    expect(outcome.settled).toBe(false);
    await clock.advanceAsync(1);
    await outcome.done;

    expect(outcome.error?.reason).toBe('deadline_exceeded');
    expect(outcome.error?.status).toBe(504);
    expect(upstream.calls).toHaveLength(0);
    expect(events).toEqual([
      { type: 'fault-injected', route: 'test-route', kind: 'delay' },
      { type: 'deadline-exceeded', route: 'test-route', upstream: 'test-upstream', stage: 'attempt' },
    ]);
  });

  it('stops delaying at once when the request is cut short', async () => {
    const { clock, layer } = setup({ delay: { percent: 100, durationMs: 2_000 }, abort: { percent: 100, status: 503 } });
    const upstream = scripted(200);
    const request = proxyRequest();
    const outcome = start(layer(upstream), request);
    await clock.advanceAsync(100, 50);

    const routeTimeout = new ProxyError('timeout', { attemptFailure: 'timeout' });
    abortRequest(request, routeTimeout);
    await outcome.done;

    expect(outcome.error).toBe(routeTimeout);
    expect(clock.pending).toBe(0);
    expect(abortListeners(request)).toBe(0);
    expect(upstream.calls).toHaveLength(0);
  });

  it('does not start a delay for a request that was already cut short', async () => {
    const { clock, layer } = setup({ delay: { percent: 100, durationMs: 2_000 } });
    const clientGone = new ProxyError('upstream_unavailable', { message: 'the client closed the connection' });
    const request = proxyRequest();
    abortRequest(request, clientGone);
    const outcome = start(layer(scripted(200)), request);
    await outcome.done;
    expect(outcome.error).toBe(clientGone);
    expect(clock.pending).toBe(0);
  });

  it('stops listening for the request being cut short once the delay is over', async () => {
    const { clock, layer } = setup({ delay: { percent: 100, durationMs: 100 } });
    const request = proxyRequest();
    const outcome = start(layer(scripted(200)), request);
    await clock.advanceAsync(50, 50);
    expect(abortListeners(request)).toBe(1);
    await clock.advanceAsync(50, 50);
    await outcome.done;
    expect(abortListeners(request)).toBe(0);
  });

  it('aborts the configured share of requests and proxies the rest', async () => {
    // 400 evenly spread draws: 25% of them, exactly 100, fall below 0.25.
    const draws = Array.from({ length: 400 }, (_, index) => (index + 0.5) / 400);
    const { layer } = setup({ abort: { percent: 25, status: 503 } }, fixedRandom(...draws));
    const upstream = scripted(200);
    const handler = layer(upstream);
    const outcomes = await Promise.allSettled(draws.map((_, index) => call(handler, proxyRequest({ requestId: `r${index}` }))));

    const aborted = outcomes.filter((outcome) => outcome.status === 'rejected' && (outcome.reason as ProxyError).reason === 'fault_injected');
    expect(aborted).toHaveLength(100);
    expect(upstream.calls).toHaveLength(300);
  });
});
