import type { BodySink } from '../../../src/exchange/request.ts';
import { describe, expect, it } from 'vitest';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { bulkheadLayer } from '../../../src/policies/bulkhead/layer.ts';
import { Bulkhead } from '../../../src/policies/bulkhead/limiter.ts';
import type { ProxyRequest, UpstreamResponse } from '../../../src/exchange/request.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { Handler } from '../../../src/exchange/handler.ts';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.ts';
import { memorySink } from '../../support/sinks.ts';
import { abortListeners, abortRequest, call, proxyRequest, response, scripted, start } from '../../support/handlers.ts';

const sink = { end: () => undefined } as unknown as BodySink;

function setup(limits: { maxConcurrent: number; maxQueued: number }, queueTimeoutMs = 100) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const bulkhead = new Bulkhead(limits);
  const layer = bulkheadLayer(bulkhead, { clock, events: { emit: (event) => events.push(event) }, queueTimeoutMs });
  return { clock, events, bulkhead, layer };
}

const requestNamed = (requestId: string, overrides: Partial<ProxyRequest> = {}) => proxyRequest({ requestId, ...overrides });

describe('bulkhead layer', () => {
  it('refuses a request beyond the limit with 503 bulkhead_full, without calling the upstream', async () => {
    const { events, bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const upstream = scripted(200);
    const handler = layer(upstream);

    await call(handler, requestNamed('a'));
    const refused = start(handler, requestNamed('b'));
    await refused.done;

    expect(refused.error).toBeInstanceOf(ProxyError);
    expect(refused.error?.reason).toBe('bulkhead_full');
    expect(refused.error?.status).toBe(503);
    expect(upstream.calls.map((call) => call.requestId)).toEqual(['a']);
    expect(events).toEqual([{ type: 'bulkhead-rejected', upstream: 'test-upstream', route: 'test-route', reason: 'full' }]);
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 1, queued: 0 });
  });

  it('holds the slot while the response body streams, and frees it when the body ends', async () => {
    const { bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const handler = layer(scripted(200));

    const first = await call(handler, requestNamed('a'));
    // The head is back but the body has not reached the client: the slot is still taken.
    expect(bulkhead.snapshot().inFlight).toBe(1);
    const refused = start(handler, requestNamed('b'));
    await refused.done;
    expect(refused.error?.reason).toBe('bulkhead_full');

    await first.body.pipeTo(sink);
    expect(bulkhead.snapshot().inFlight).toBe(0);
    const next = await call(handler, requestNamed('c'));
    expect(next.status).toBe(200);
  });

  it('frees the slot when the body is discarded, and passes the discard on', async () => {
    const { bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const upstream = scripted(200);
    const made = await call(layer(upstream), requestNamed('a'));
    made.body.discard();
    expect(upstream.responses[0]?.discarded).toBe(true);
    expect(bulkhead.snapshot().inFlight).toBe(0);
  });

  it('frees the slot when the upstream call fails', async () => {
    const { bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const outcome = start(layer(scripted('reset')), requestNamed('a'));
    await outcome.done;
    expect(outcome.error?.reason).toBe('upstream_unavailable');
    expect(bulkhead.snapshot().inFlight).toBe(0);
  });

  it('frees the slot when streaming the body fails, and passes the failure on', async () => {
    const { bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const cutShort = new ProxyError('upstream_unavailable', { attemptFailure: 'reset' });
    const failing: UpstreamResponse = { status: 200, headers: {}, body: { pipeTo: () => Promise.reject(cutShort), discard: () => undefined } };
    const made = await call(layer(scripted(() => Promise.resolve(failing))), requestNamed('a'));
    await expect(made.body.pipeTo(sink)).rejects.toBe(cutShort);
    expect(bulkhead.snapshot().inFlight).toBe(0);
  });

  it('frees the slot even when a body throws instead of rejecting', async () => {
    const { bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const broken = new Error('sink closed');
    const throwing: UpstreamResponse = {
      status: 200,
      headers: {},
      body: {
        pipeTo: () => {
          throw broken;
        },
        discard: () => {
          throw broken;
        },
      },
    };
    const upstream = scripted(() => Promise.resolve(throwing));
    const piped = await call(layer(upstream), requestNamed('a'));
    await expect(piped.body.pipeTo(sink)).rejects.toBe(broken);
    expect(bulkhead.snapshot().inFlight).toBe(0);

    const discarded = await call(layer(upstream), requestNamed('b'));
    expect(() => discarded.body.discard()).toThrow(broken);
    expect(bulkhead.snapshot().inFlight).toBe(0);
  });

  it('gives the slot back once, however often the body is finished', async () => {
    const { bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 1 });
    const handler = layer(scripted(200));
    const holder = await call(handler, requestNamed('a'));
    const waiting = start(handler, requestNamed('b'));
    await flushMicrotasks();

    holder.body.discard();
    await waiting.done;
    expect(waiting.response?.status).toBe(200);
    // A second release from the first request would free the slot the second one now holds.
    holder.body.discard();
    await holder.body.pipeTo(sink);
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 1, queued: 0 });
  });

  it('keeps one slot for the whole request, across every attempt an inner retry makes', async () => {
    const { clock, bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 1 }, 1_000);
    const upstream = scripted(503, 503, 200);
    // Stands in for the retry layer: three attempts, 50 ms of backoff between them.
    const retrying: Handler = async (request, scope) => {
      for (;;) {
        const made = await upstream(request, scope);
        if (made.status !== 503) return made;
        made.body.discard();
        await new Promise<void>((resolve) => clock.setTimer(50, resolve));
      }
    };
    const handler = layer(retrying);

    const first = start(handler, requestNamed('a'));
    const second = start(handler, requestNamed('b'));
    await clock.advanceAsync(100);
    await first.done;
    expect(upstream.calls.map((call) => call.requestId)).toEqual(['a', 'a', 'a']);
    // All three attempts are over but the body has not streamed: b still waits.
    expect(second.settled).toBe(false);
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 1, queued: 1 });

    await first.response?.body.pipeTo(sink);
    await clock.advanceAsync(100);
    await second.done;
    // The script's last step repeats, so b succeeds on its first attempt.
    expect(upstream.calls.map((call) => call.requestId)).toEqual(['a', 'a', 'a', 'b']);
  });

  it('serves queued requests in arrival order as slots come free', async () => {
    const { events, layer } = setup({ maxConcurrent: 1, maxQueued: 3 }, 1_000);
    const upstream = scripted(200);
    const handler = layer(upstream);
    const holder = await call(handler, requestNamed('a'));
    const queued = ['b', 'c', 'd'].map((id) => start(handler, requestNamed(id)));
    await flushMicrotasks();
    expect(upstream.calls.map((call) => call.requestId)).toEqual(['a']);

    let current = holder;
    for (const [index, waiting] of queued.entries()) {
      current.body.discard();
      await waiting.done;
      expect(upstream.calls.map((call) => call.requestId)).toEqual(['a', 'b', 'c', 'd'].slice(0, index + 2));
      current = waiting.response!;
    }
    expect(events.map((event) => event.type)).toEqual(['bulkhead-queued', 'bulkhead-queued', 'bulkhead-queued']);
  });

  it('tells how long a queued request waited for its slot, and stops its timer once it has one', async () => {
    const { clock, events, layer } = setup({ maxConcurrent: 1, maxQueued: 1 }, 100);
    const handler = layer(scripted(200));
    const holder = await call(handler, requestNamed('a'));
    const request = requestNamed('b');
    const waiting = start(handler, request);
    await clock.advanceAsync(40);
    expect(abortListeners(request)).toBe(1);

    holder.body.discard();
    await waiting.done;
    expect(waiting.response?.status).toBe(200);
    expect(events).toEqual([{ type: 'bulkhead-queued', upstream: 'test-upstream', route: 'test-route', waitedMs: 40 }]);
    expect(clock.pending).toBe(0);
    // Waiting is over: the bulkhead no longer listens for the request being cut short.
    expect(abortListeners(request)).toBe(0);
  });

  it('refuses a request once the queue is full', async () => {
    const { events, layer } = setup({ maxConcurrent: 1, maxQueued: 1 });
    const upstream = scripted(200);
    const handler = layer(upstream);
    await call(handler, requestNamed('a'));
    const waiting = start(handler, requestNamed('b'));
    const refused = start(handler, requestNamed('c'));
    await refused.done;

    expect(refused.error?.reason).toBe('bulkhead_full');
    expect(waiting.settled).toBe(false);
    expect(events).toEqual([{ type: 'bulkhead-rejected', upstream: 'test-upstream', route: 'test-route', reason: 'full' }]);
  });

  it('refuses a queued request with 503 bulkhead_full when the queue timeout passes', async () => {
    const { clock, events, bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 1 }, 100);
    const upstream = scripted(200);
    const handler = layer(upstream);
    const holder = await call(handler, requestNamed('a'));
    const waiting = start(handler, requestNamed('b'));

    await clock.advanceAsync(99);
    expect(waiting.settled).toBe(false);
    await clock.advanceAsync(1);
    await waiting.done;

    expect(waiting.error?.reason).toBe('bulkhead_full');
    expect(waiting.error?.message).toContain('queue timeout of 100 ms');
    expect(events).toEqual([{ type: 'bulkhead-rejected', upstream: 'test-upstream', route: 'test-route', reason: 'queue-timeout' }]);
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 1, queued: 0 });
    // The slot that comes free later goes to nobody: the timed-out request left the queue.
    holder.body.discard();
    expect(bulkhead.snapshot().inFlight).toBe(0);
    expect(upstream.calls.map((call) => call.requestId)).toEqual(['a']);
  });

  it('stops waiting when the deadline comes before the queue timeout: 504 deadline_exceeded', async () => {
    const { clock, events, layer } = setup({ maxConcurrent: 1, maxQueued: 1 }, 1_000);
    const handler = layer(scripted(200));
    await call(handler, requestNamed('a'));
    const waiting = start(handler, requestNamed('b', { deadlineAt: 1_300 }));

    await clock.advanceAsync(299);
    expect(waiting.settled).toBe(false);
    await clock.advanceAsync(1);
    await waiting.done;

    expect(waiting.error?.reason).toBe('deadline_exceeded');
    expect(waiting.error?.status).toBe(504);
    expect(events).toEqual([
      { type: 'bulkhead-rejected', upstream: 'test-upstream', route: 'test-route', reason: 'deadline' },
      { type: 'deadline-exceeded', upstream: 'test-upstream', route: 'test-route', stage: 'attempt' },
    ]);
  });

  it('does not queue a request whose deadline is already spent', async () => {
    const { clock, events, bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 1 }, 1_000);
    const handler = layer(scripted(200));
    await call(handler, requestNamed('a'));
    const late = start(handler, requestNamed('b', { deadlineAt: 1_000 }));
    await late.done;

    expect(late.error?.reason).toBe('deadline_exceeded');
    expect(events.map((event) => event.type)).toEqual(['bulkhead-rejected', 'deadline-exceeded']);
    expect(bulkhead.snapshot().queued).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('does not wait at all with a zero queue timeout', async () => {
    const { events, bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 5 }, 0);
    const handler = layer(scripted(200));
    await call(handler, requestNamed('a'));
    const refused = start(handler, requestNamed('b'));
    await refused.done;

    expect(refused.error?.reason).toBe('bulkhead_full');
    expect(events).toEqual([{ type: 'bulkhead-rejected', upstream: 'test-upstream', route: 'test-route', reason: 'queue-timeout' }]);
    expect(bulkhead.snapshot().queued).toBe(0);
  });

  it('leaves the queue at once when the request is cut short while it waits', async () => {
    const { clock, events, bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 1 }, 1_000);
    const upstream = scripted(200);
    const handler = layer(upstream);
    const holder = await call(handler, requestNamed('a'));
    const request = requestNamed('b');
    const waiting = start(handler, request);
    await clock.advanceAsync(30);

    const clientGone = new ProxyError('upstream_unavailable', { message: 'the client closed the connection' });
    abortRequest(request, clientGone);
    await waiting.done;

    expect(waiting.error).toBe(clientGone);
    expect(abortListeners(request)).toBe(0);
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 1, queued: 0 });
    expect(clock.pending).toBe(0);
    // Cut short by someone else: neither a wait that ended with a slot nor a bulkhead refusal.
    expect(events).toEqual([]);
    holder.body.discard();
    expect(upstream.calls.map((call) => call.requestId)).toEqual(['a']);
    expect(bulkhead.snapshot().inFlight).toBe(0);
  });

  it('takes no slot for a request that was cut short before it arrived', async () => {
    const { bulkhead, layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const upstream = scripted(200);
    const timedOut = new ProxyError('timeout', { attemptFailure: 'timeout' });
    const request = requestNamed('a');
    abortRequest(request, timedOut);
    const outcome = start(layer(upstream), request);
    await outcome.done;
    expect(outcome.error).toBe(timedOut);
    expect(upstream.calls).toHaveLength(0);
    expect(bulkhead.snapshot().inFlight).toBe(0);
  });

  it('lets a slot freed on one route wake a request queued on another route to the same upstream', async () => {
    const clock = new FakeClock(1_000);
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 1 });
    const deps = { clock, events: { emit: () => undefined }, queueTimeoutMs: 1_000 };
    const upstream = scripted(200);
    const charge = bulkheadLayer(bulkhead, deps)(upstream);
    const refund = bulkheadLayer(bulkhead, deps)(upstream);

    const holder = await call(charge, requestNamed('a', { route: 'charge' }));
    const waiting = start(refund, requestNamed('b', { route: 'refund' }));
    await flushMicrotasks();
    holder.body.discard();
    await waiting.done;
    expect(waiting.response?.status).toBe(200);
    expect(upstream.calls.map((call) => call.route)).toEqual(['charge', 'refund']);
  });

  it('keeps the bulkheads of two upstreams independent', async () => {
    const clock = new FakeClock(1_000);
    const deps = { clock, events: { emit: () => undefined }, queueTimeoutMs: 100 };
    const payments = bulkheadLayer(new Bulkhead({ maxConcurrent: 1, maxQueued: 0 }), deps)(scripted(200));
    const search = bulkheadLayer(new Bulkhead({ maxConcurrent: 1, maxQueued: 0 }), deps)(scripted(200));

    await call(payments, requestNamed('a', { upstream: 'payments' }));
    const full = start(payments, requestNamed('b', { upstream: 'payments' }));
    await full.done;
    expect(full.error?.reason).toBe('bulkhead_full');
    // A saturated payments upstream takes nothing from search.
    const other = await call(search, requestNamed('c', { upstream: 'search' }));
    expect(other.status).toBe(200);
  });

  it('passes the upstream response through unchanged apart from the body', async () => {
    const { layer } = setup({ maxConcurrent: 1, maxQueued: 0 });
    const made = response(201, { 'content-type': 'text/plain' }, 'created');
    const passed = await call(layer(scripted(() => Promise.resolve(made))), requestNamed('a'));
    expect(passed.status).toBe(201);
    expect(passed.headers).toEqual({ 'content-type': 'text/plain' });
    const client = memorySink();
    await passed.body.pipeTo(client.sink);
    expect(client.text()).toBe('created');
  });
});
