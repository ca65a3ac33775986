import { describe, expect, it } from 'vitest';
import type { CircuitBreakerConfig } from '../../../src/config/types.ts';
import { breakerLayer } from '../../../src/policies/breaker/layer.ts';
import { CircuitBreaker } from '../../../src/policies/breaker/state.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import type { UpstreamResponse } from '../../../src/exchange/request.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { Handler } from '../../../src/exchange/handler.ts';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.ts';
import { abortRequest, call, hanging, proxyRequest, response, scripted, type Step } from '../../support/handlers.ts';
import { breakerConfig } from './breaker-config.ts';

function setup(overrides: Partial<CircuitBreakerConfig> = {}) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const emit = (event: PolicyEvent) => events.push(event);
  const breaker = new CircuitBreaker({
    name: 'payments',
    upstream: 'test-upstream',
    config: breakerConfig(overrides),
    onTransition: (from, to) => emit({ type: 'breaker-transition', breaker: 'payments', upstream: 'test-upstream', from, to }),
  });
  const layer = breakerLayer(breaker, { clock, events: { emit } });
  return { clock, events, breaker, layer };
}

/** Sends one request through the handler; resolves with the response or the ProxyError. */
async function send(handler: Handler): Promise<UpstreamResponse | ProxyError> {
  return call(handler, proxyRequest()).catch((error: unknown) => error as ProxyError);
}

/** An upstream step that answers `status` after `ms` of fake time. */
function after(clock: FakeClock, ms: number, status: number): Step {
  return () => {
    clock.advance(ms);
    return Promise.resolve(response(status));
  };
}

const transitions = (events: PolicyEvent[]) =>
  events.flatMap((event) => (event.type === 'breaker-transition' ? [`${event.from} -> ${event.to}`] : []));

describe('breaker layer', () => {
  it('refuses with 503 circuit_open while open, without calling the upstream', async () => {
    const { events, layer } = setup();
    const upstream = scripted(503);
    const handler = layer(upstream);
    for (let i = 0; i < 4; i++) await send(handler);
    expect(upstream.calls).toHaveLength(4);
    events.length = 0;

    const refused = await send(handler);

    expect(refused).toBeInstanceOf(ProxyError);
    expect(refused).toMatchObject({ reason: 'circuit_open', status: 503, attemptFailure: undefined });
    expect((refused as ProxyError).message).toBe('circuit breaker payments is open; probes resume in 30000 ms');
    expect(upstream.calls).toHaveLength(4);
    expect(events).toEqual([{ type: 'breaker-rejected', breaker: 'payments', route: 'test-route', upstream: 'test-upstream' }]);
  });

  it('passes responses through unchanged and counts 5xx as failures, 4xx as successes', async () => {
    const { clock, breaker, layer } = setup({ minRequests: 100 });
    const upstream = scripted(500, 404, 200, 503);

    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push(((await send(layer(upstream))) as UpstreamResponse).status);

    expect(statuses).toEqual([500, 404, 200, 503]);
    expect(breaker.rates(clock.now())).toMatchObject({ calls: 4, failures: 2 });
  });

  it('counts attempt failures in failOn and passes the error on', async () => {
    const { clock, breaker, layer } = setup({ minRequests: 100 });
    const upstream = scripted('connect-failure', 'reset', 'timeout');

    const errors = [await send(layer(upstream)), await send(layer(upstream)), await send(layer(upstream))];

    expect(errors.map((error) => (error as ProxyError).attemptFailure)).toEqual(['connect-failure', 'reset', 'timeout']);
    expect(breaker.rates(clock.now())).toMatchObject({ calls: 3, failures: 3 });
  });

  it('counts outcomes missing from failOn as successes', async () => {
    const { clock, breaker, layer } = setup({ failOn: ['connect-failure'], minRequests: 3 });
    const upstream = scripted(500, 'reset', 'timeout');

    for (let i = 0; i < 3; i++) await send(layer(upstream));

    expect(breaker.rates(clock.now())).toMatchObject({ calls: 3, failures: 0 });
    expect(breaker.stateAt(clock.now()).kind).toBe('closed');
  });

  it('does not judge the upstream on errors that are not attempt failures', async () => {
    const { clock, breaker, layer } = setup();
    const upstream = scripted(new ProxyError('deadline_exceeded'), new ProxyError('payload_too_large'));

    const errors = [await send(layer(upstream)), await send(layer(upstream))];

    expect(errors.map((error) => (error as ProxyError).reason)).toEqual(['deadline_exceeded', 'payload_too_large']);
    expect(breaker.rates(clock.now()).calls).toBe(0);
  });

  it('passes on an unexpected error without holding it against the upstream', async () => {
    const { clock, breaker, layer } = setup({ minRequests: 1 });
    const broken: Handler = () => Promise.reject(new TypeError('bug in a layer below'));

    await expect(call(layer(broken), proxyRequest())).rejects.toThrow('bug in a layer below');

    expect(breaker.rates(clock.now()).calls).toBe(0);
  });

  it('counts a call as slow by the time to its response head', async () => {
    const { clock, breaker, layer } = setup({ slowCallDurationMs: 1_000, minRequests: 100 });
    const upstream = scripted(after(clock, 1_000, 200), after(clock, 1_001, 200), after(clock, 5_000, 500));

    for (let i = 0; i < 3; i++) await send(layer(upstream));

    // Exactly slowCallDuration is not slower than it; a failed call can be slow too.
    expect(breaker.rates(clock.now())).toMatchObject({ calls: 3, slowCalls: 2, failures: 1 });
  });

  it('opens on slow calls when slowCallRate is set, and says so on the refusal', async () => {
    const { clock, events, layer } = setup({ slowCallDurationMs: 100, slowCallRate: 0.5 });
    const upstream = scripted(after(clock, 150, 200), 200, after(clock, 150, 200), 200);

    for (let i = 0; i < 4; i++) await send(layer(upstream));

    expect(transitions(events)).toEqual(['closed -> open']);
    expect(await send(layer(upstream))).toMatchObject({ reason: 'circuit_open' });
  });

  it('frees the probe slot of a probe the client gave up on', async () => {
    const { clock, breaker, layer } = setup({ halfOpenRequests: 1, openForMs: 1_000, openForMaxMs: 1_000 });
    for (let i = 0; i < 4; i++) await send(layer(scripted(503)));
    clock.advance(1_000);

    // The single probe hangs, so the next call finds no probe slot free.
    const probe = proxyRequest();
    const probed = call(layer(hanging()), probe).catch((error: unknown) => error as ProxyError);
    await flushMicrotasks();
    expect(await send(layer(scripted(200)))).toMatchObject({ reason: 'circuit_open', message: 'circuit breaker payments is half-open and every probe slot is taken' });

    // The client leaves: the probe is cancelled without a verdict on the upstream.
    abortRequest(probe, new ProxyError('upstream_unavailable', { message: 'the client closed the connection' }));
    expect(await probed).toMatchObject({ attemptFailure: undefined });

    expect(breaker.stateAt(clock.now())).toMatchObject({ kind: 'half-open', probesInFlight: 0 });
    const next = scripted(200);
    expect(await send(layer(next))).toMatchObject({ status: 200 });
    expect(next.calls).toHaveLength(1);
    expect(breaker.stateAt(clock.now()).kind).toBe('closed');
  });

  it('refuses every call while forced open and lets every call through while disabled', async () => {
    const { breaker, events, layer } = setup();
    const upstream = scripted(503);

    breaker.setMode('forced-open');
    const refused = await send(layer(upstream));
    breaker.setMode('disabled');
    for (let i = 0; i < 10; i++) await send(layer(upstream));

    expect(refused).toMatchObject({ reason: 'circuit_open', message: 'circuit breaker payments was forced open by an operator' });
    expect(upstream.calls).toHaveLength(10);
    expect(transitions(events)).toEqual(['closed -> forced-open', 'forced-open -> disabled']);
    expect(events.filter((event) => event.type === 'breaker-rejected')).toHaveLength(1);
  });

  it('trips, rejects, probes, reopens for longer, and recovers: a day in the life', async () => {
    const { clock, events, breaker, layer } = setup({
      minRequests: 4,
      failureRate: 0.5,
      openForMs: 10_000,
      openForMaxMs: 60_000,
      halfOpenRequests: 2,
    });
    let healthy = true;
    const upstream = scripted(() => Promise.resolve(response(healthy ? 200 : 503)));
    const handler = layer(upstream);
    const statusOf = async () => {
      const result = await send(handler);
      return result instanceof ProxyError ? result.reason : result.status;
    };

    // The upstream answers: three calls go through and the breaker stays closed.
    expect([await statusOf(), await statusOf(), await statusOf()]).toEqual([200, 200, 200]);

    // It starts failing. With 3 good calls in the window, it takes 3 failures to reach 50%.
    healthy = false;
    expect([await statusOf(), await statusOf()]).toEqual([503, 503]);
    expect(breaker.stateAt(clock.now()).kind).toBe('closed');
    expect(await statusOf()).toBe(503);
    expect(transitions(events)).toEqual(['closed -> open']);

    // While open, callers get circuit_open at once and the upstream sees nothing.
    const callsWhenOpened = upstream.calls.length;
    clock.advance(9_999);
    expect(await statusOf()).toBe('circuit_open');
    expect(upstream.calls).toHaveLength(callsWhenOpened);

    // After openFor, the breaker is half-open; the first probe fails and it reopens, for twice as long.
    clock.advance(1);
    expect(await statusOf()).toBe(503);
    expect(transitions(events)).toEqual(['closed -> open', 'open -> half-open', 'half-open -> open']);
    clock.advance(19_999);
    expect(await statusOf()).toBe('circuit_open');

    // The upstream recovers. After 20s, two probes succeed and the breaker closes.
    healthy = true;
    clock.advance(1);
    expect([await statusOf(), await statusOf()]).toEqual([200, 200]);
    expect(transitions(events).slice(-2)).toEqual(['open -> half-open', 'half-open -> closed']);

    // Its statistics start afresh: three failures are below minRequests again.
    healthy = false;
    expect([await statusOf(), await statusOf(), await statusOf()]).toEqual([503, 503, 503]);
    expect(breaker.stateAt(clock.now()).kind).toBe('closed');
    expect(events.filter((event) => event.type === 'breaker-rejected')).toHaveLength(2);
  });
});

describe('breaker layer on gRPC calls', () => {
  /** A gRPC response whose status comes later, with its trailers: the test settles it. */
  function lateResponse(): { response: UpstreamResponse; settle: (grpcStatus: number | undefined) => void } {
    type Outcome = { kind: 'response'; status: number; grpcStatus: number } | undefined;
    const listeners: ((outcome: Outcome) => void)[] = [];
    let settled: { outcome: Outcome } | undefined;
    return {
      response: {
        ...response(200),
        // As the forwarding handler's: a listener that comes after the end is told at once.
        lateOutcome: { onOutcome: (listener) => (settled === undefined ? listeners.push(listener) : listener(settled.outcome)) },
      },
      settle: (grpcStatus) => {
        settled = { outcome: grpcStatus === undefined ? undefined : { kind: 'response', status: 200, grpcStatus } };
        for (const listener of listeners) listener(settled.outcome);
      },
    };
  }

  it('judges a call whose head had no status by the status its trailers bring', async () => {
    const { events, layer } = setup({ failOn: ['unavailable'] });
    const calls = Array.from({ length: 4 }, () => lateResponse());
    let next = 0;
    const handler = layer(() => Promise.resolve(calls[next++]!.response));
    for (let i = 0; i < 4; i++) await send(handler);
    // Four heads, nothing judged yet: the breaker is still closed.
    expect(transitions(events)).toEqual([]);
    for (const late of calls) late.settle(14);
    expect(transitions(events)).toEqual(['closed -> open']);
  });

  it('counts a trailers status failOn does not name as a success', async () => {
    const { events, layer } = setup({ failOn: ['unavailable'] });
    const handler = layer(() => {
      const late = lateResponse();
      late.settle(13);
      return Promise.resolve(late.response);
    });
    for (let i = 0; i < 6; i++) await send(handler);
    expect(transitions(events)).toEqual([]);
  });

  it('gives back the probe slot of a call Breakwater gave up on, judging nothing', async () => {
    const { clock, events, layer, breaker } = setup({ halfOpenRequests: 1 });
    const failing = layer(scripted(503));
    for (let i = 0; i < 4; i++) await send(failing);
    clock.advance(30_000);
    const late = lateResponse();
    const probing = layer(() => Promise.resolve(late.response));
    await send(probing);
    expect(breaker.stateNameAt(clock.now())).toBe('half-open');
    // Its one probe slot is taken until the call ends...
    expect(await send(probing)).toMatchObject({ reason: 'circuit_open' });
    // ...and given back when the call is cancelled, with no verdict.
    late.settle(undefined);
    expect(transitions(events)).toEqual(['closed -> open', 'open -> half-open']);
    const next = lateResponse();
    next.settle(0);
    expect(await send(layer(() => Promise.resolve(next.response)))).not.toBeInstanceOf(ProxyError);
    expect(transitions(events)).toEqual(['closed -> open', 'open -> half-open', 'half-open -> closed']);
  });
});
