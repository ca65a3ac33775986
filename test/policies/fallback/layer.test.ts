import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { FallbackConfig, FallbackStep, FallbackTrigger } from '../../../src/config/types.ts';
import type { FallbackKind, PolicyEvent } from '../../../src/exchange/events.ts';
import { fallbackLayer, type FallbackDeps } from '../../../src/policies/fallback/layer.ts';
import { StaleCache } from '../../../src/policies/fallback/stale-cache.ts';
import type { UpstreamResponse } from '../../../src/exchange/request.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { Handler } from '../../../src/exchange/handler.ts';
import { FakeClock } from '../../support/fake-clock.ts';
import { abortRequest, call, hanging, proxyRequest, response, scripted } from '../../support/handlers.ts';
import { memorySink } from '../../support/sinks.ts';

const stale: FallbackStep = { kind: 'staleCache', maxAgeMs: 60_000 };
const failoverStep: FallbackStep = { kind: 'upstream', upstream: 'catalog-dr' };
const emptyList: FallbackStep = { kind: 'response', status: 200, headers: { 'content-type': 'application/json' }, body: '{"items":[]}' };
const everyTrigger: FallbackTrigger[] = ['circuit-open', 'bulkhead-full', 'timeout', 'upstream-unavailable', '5xx'];

function setup(config: FallbackConfig, options: { failover?: Handler; cache?: boolean } = {}) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const cache = options.cache === false ? undefined : new StaleCache(60_000);
  const failoverCalls: string[] = [];
  const deps: FallbackDeps = {
    clock,
    events: { emit: (event) => events.push(event) },
    route: 'catalog-items',
    ...(cache === undefined ? {} : { cache }),
    ...(options.failover === undefined
      ? {}
      : {
          failover: (upstream: string) => {
            failoverCalls.push(upstream);
            return options.failover!;
          },
        }),
  };
  return { clock, events, cache, failoverCalls, layer: fallbackLayer(config, deps) };
}

async function bodyText(served: UpstreamResponse): Promise<string> {
  const client = memorySink();
  await served.body.pipeTo(client.sink);
  return client.text();
}

/** A 200 answer to the request, streamed to a client so the stale cache can keep it. */
async function primeCache(layer: ReturnType<typeof setup>['layer'], text: string, request = proxyRequest({ path: '/items' })): Promise<void> {
  const served = await call(layer(() => Promise.resolve(response(200, { 'content-type': 'application/json' }, text))), request);
  expect(await bodyText(served)).toBe(text);
}

/** The fallback events expected, one per step tried. */
function fallbackEvents(...steps: [FallbackKind, 'success' | 'failure'][]): PolicyEvent[] {
  return steps.map(([kind, result]) => ({ type: 'fallback', route: 'catalog-items', kind, result }));
}

describe('fallback layer: when it starts', () => {
  it.each([
    ['circuit-open', new ProxyError('circuit_open')],
    ['bulkhead-full', new ProxyError('bulkhead_full')],
    ['timeout', new ProxyError('timeout', { attemptFailure: 'timeout' })],
    ['timeout', new ProxyError('deadline_exceeded')],
    ['upstream-unavailable', new ProxyError('upstream_unavailable', { attemptFailure: 'connect-failure' })],
  ] as const)('serves the chain on %s (%s)', async (trigger, error) => {
    const { events, layer } = setup({ on: [trigger], chain: [emptyList] });
    const served = await call(layer(scripted(error)), proxyRequest());
    expect(served.status).toBe(200);
    expect(served.fallback).toBe('static');
    expect(events).toEqual(fallbackEvents(['static', 'success']));
  });

  it.each([
    ['circuit-open', new ProxyError('circuit_open')],
    ['bulkhead-full', new ProxyError('bulkhead_full')],
    ['timeout', new ProxyError('timeout')],
    ['timeout', new ProxyError('deadline_exceeded')],
    ['upstream-unavailable', new ProxyError('upstream_unavailable')],
  ] as const)('lets %s (%s) through when `on` does not list it', async (trigger, error) => {
    const { events, layer } = setup({ on: everyTrigger.filter((other) => other !== trigger), chain: [emptyList] });
    await expect(call(layer(scripted(error)), proxyRequest())).rejects.toBe(error);
    expect(events).toEqual([]);
  });

  it('never falls back on other local failures or on errors that are not ProxyErrors', async () => {
    const { events, layer } = setup({ on: everyTrigger, chain: [emptyList] });
    const tooLarge = new ProxyError('payload_too_large');
    await expect(call(layer(scripted(tooLarge)), proxyRequest())).rejects.toBe(tooLarge);
    const bug = new TypeError('not a proxy error');
    await expect(call(layer(() => Promise.reject(bug)), proxyRequest())).rejects.toBe(bug);
    expect(events).toEqual([]);
  });

  it('serves the chain on an upstream 5xx when `on` lists 5xx, and discards the 5xx', async () => {
    const { events, layer } = setup({ on: ['5xx'], chain: [emptyList] });
    const upstream = scripted(503);
    const served = await call(layer(upstream), proxyRequest());
    expect(served.fallback).toBe('static');
    expect(upstream.responses[0]!.discarded).toBe(true);
    expect(events).toEqual(fallbackEvents(['static', 'success']));
  });

  it('passes a 5xx through untouched when `on` does not list 5xx', async () => {
    const { events, layer } = setup({ on: ['timeout'], chain: [emptyList] });
    const upstream = scripted(500);
    const served = await call(layer(upstream), proxyRequest({ method: 'POST' }));
    expect(served).toBe(upstream.responses[0]);
    expect(upstream.responses[0]!.discarded).toBe(false);
    expect(events).toEqual([]);
  });

  it('passes good answers through and calls the upstream once', async () => {
    const { events, layer } = setup({ on: everyTrigger, chain: [emptyList] }, { cache: false });
    const upstream = scripted(404);
    const served = await call(layer(upstream), proxyRequest());
    expect(served).toBe(upstream.responses[0]);
    expect(upstream.calls).toHaveLength(1);
    expect(events).toEqual([]);
  });

  it('falls back when the route timeout cuts a hanging call short', async () => {
    const { events, layer } = setup({ on: ['timeout'], chain: [emptyList] });
    const request = proxyRequest();
    const pending = call(layer(hanging()), request);
    // What the listener does when the route timeout fires.
    abortRequest(request, new ProxyError('timeout', { attemptFailure: 'timeout' }));
    expect((await pending).fallback).toBe('static');
    expect(events).toEqual(fallbackEvents(['static', 'success']));
  });
});

describe('fallback layer: the chain', () => {
  const chain = [stale, failoverStep, emptyList];

  it('stops at the first step that serves: a stale hit leaves the rest untried', async () => {
    const { clock, events, failoverCalls, layer } = setup({ on: ['upstream-unavailable'], chain }, { failover: scripted(200) });
    await primeCache(layer, '{"items":[1]}');
    clock.advance(5_000);
    const served = await call(layer(scripted('connect-failure')), proxyRequest({ path: '/items' }));
    expect(served.fallback).toBe('stale');
    expect(served.headers).toMatchObject({ 'x-breakwater-fallback': 'stale', age: '5' });
    expect(await bodyText(served)).toBe('{"items":[1]}');
    expect(failoverCalls).toEqual([]);
    expect(events).toEqual(fallbackEvents(['stale', 'success']));
  });

  it('falls through a stale miss to the failover upstream, called with the request', async () => {
    const other = scripted(200);
    const { events, failoverCalls, layer } = setup({ on: ['circuit-open'], chain }, { failover: other });
    const request = proxyRequest({ path: '/items' });
    const served = await call(layer(scripted(new ProxyError('circuit_open'))), request);
    expect(failoverCalls).toEqual(['catalog-dr']);
    expect(other.calls).toEqual([request]);
    expect(served.status).toBe(200);
    expect(served.fallback).toBe('upstream');
    expect(served.headers['x-breakwater-fallback']).toBe('upstream');
    expect(events).toEqual(fallbackEvents(['stale', 'failure'], ['upstream', 'success']));
  });

  it('falls through to the static response when the failover upstream fails too', async () => {
    const { events, layer } = setup({ on: ['circuit-open'], chain }, { failover: scripted('connect-failure') });
    const served = await call(layer(scripted(new ProxyError('circuit_open'))), proxyRequest());
    expect(served.fallback).toBe('static');
    expect(events).toEqual(fallbackEvents(['stale', 'failure'], ['upstream', 'failure'], ['static', 'success']));
  });

  it('treats a failover answer that is itself a trigger as a failure, and discards it', async () => {
    const other = scripted(503);
    const { events, layer } = setup({ on: ['5xx'], chain }, { failover: other });
    const served = await call(layer(scripted(500)), proxyRequest());
    expect(served.fallback).toBe('static');
    expect(other.responses[0]!.discarded).toBe(true);
    expect(events).toEqual(fallbackEvents(['stale', 'failure'], ['upstream', 'failure'], ['static', 'success']));
  });

  it('serves a failover 5xx when `on` does not list 5xx', async () => {
    const { layer } = setup({ on: ['bulkhead-full'], chain: [failoverStep] }, { failover: scripted(502) });
    const served = await call(layer(scripted(new ProxyError('bulkhead_full'))), proxyRequest());
    expect(served.status).toBe(502);
    expect(served.fallback).toBe('upstream');
  });

  it('fails over a request whose body is in memory, never one whose body has streamed away', async () => {
    const other = scripted(200);
    const { events, layer } = setup({ on: ['timeout'], chain: [failoverStep] }, { failover: other });
    const buffered = await call(layer(scripted('timeout')), proxyRequest({ method: 'PUT', body: Buffer.from('{"a":1}') }));
    expect(buffered.fallback).toBe('upstream');
    const streamed = proxyRequest({ method: 'PUT', body: Readable.from(['{"a":1}']) });
    const error = await call(layer(scripted('timeout')), streamed).catch((e: unknown) => e);
    expect((error as ProxyError).reason).toBe('timeout');
    expect(other.calls).toHaveLength(1);
    expect(events).toEqual(fallbackEvents(['upstream', 'success'], ['upstream', 'failure']));
  });

  it('skips the failover upstream once the request was cut short', async () => {
    const other = scripted(200);
    const { events, layer } = setup({ on: ['timeout'], chain: [failoverStep, emptyList] }, { failover: other });
    const request = proxyRequest();
    const pending = call(layer(hanging()), request);
    abortRequest(request, new ProxyError('timeout', { attemptFailure: 'timeout' }));
    expect((await pending).fallback).toBe('static');
    expect(other.calls).toHaveLength(0);
    expect(events).toEqual(fallbackEvents(['upstream', 'failure'], ['static', 'success']));
  });

  it('rethrows the original error when every step fails', async () => {
    const { events, layer } = setup({ on: ['circuit-open'], chain: [stale, failoverStep] }, { failover: scripted('reset') });
    const original = new ProxyError('circuit_open');
    await expect(call(layer(scripted(original)), proxyRequest())).rejects.toBe(original);
    expect(events).toEqual(fallbackEvents(['stale', 'failure'], ['upstream', 'failure']));
  });

  it('returns the original 5xx, not discarded, when every step fails', async () => {
    const { events, layer } = setup({ on: ['5xx'], chain: [stale] });
    const upstream = scripted(503);
    const served = await call(layer(upstream), proxyRequest());
    expect(served).toBe(upstream.responses[0]);
    expect(upstream.responses[0]!.discarded).toBe(false);
    expect(events).toEqual(fallbackEvents(['stale', 'failure']));
  });
});

describe('fallback layer: static responses', () => {
  it('serve the configured status, headers and body, with a length and the fallback header', async () => {
    const { layer } = setup({ on: ['timeout'], chain: [emptyList] });
    const served = await call(layer(scripted('timeout')), proxyRequest());
    expect(served.status).toBe(200);
    expect(served.headers).toEqual({ 'content-type': 'application/json', 'content-length': '12', 'x-breakwater-fallback': 'static' });
    expect(await bodyText(served)).toBe('{"items":[]}');
  });

  it('stay whole for the next request when a client leaves before its copy is sent', async () => {
    const { layer } = setup({ on: ['timeout'], chain: [emptyList] });
    (await call(layer(scripted('timeout')), proxyRequest())).body.discard();
    expect(await bodyText(await call(layer(scripted('timeout')), proxyRequest()))).toBe('{"items":[]}');
  });

  it('give a 204 no Content-Length and no body', async () => {
    const { layer } = setup({ on: ['timeout'], chain: [{ kind: 'response', status: 204, headers: {}, body: '' }] });
    const served = await call(layer(scripted('timeout')), proxyRequest());
    expect(served.status).toBe(204);
    expect(served.headers).toEqual({ 'x-breakwater-fallback': 'static' });
    expect(await bodyText(served)).toBe('');
  });
});

describe('fallback layer: capturing for the stale cache', () => {
  it('keeps good GET answers as they stream and serves them later with their Age', async () => {
    const { clock, events, layer } = setup({ on: ['upstream-unavailable'], chain: [stale, emptyList] });
    await primeCache(layer, '{"items":[1,2]}');
    clock.advance(59_999);
    const served = await call(layer(scripted('reset')), proxyRequest({ path: '/items' }));
    expect(served.headers).toMatchObject({ age: '59', 'content-type': 'application/json' });
    expect(await bodyText(served)).toBe('{"items":[1,2]}');
    clock.advance(2);
    expect((await call(layer(scripted('reset')), proxyRequest({ path: '/items' }))).fallback).toBe('static');
    expect(events).toEqual(fallbackEvents(['stale', 'success'], ['stale', 'failure'], ['static', 'success']));
  });

  it('answers HEAD from a kept GET answer', async () => {
    const { layer } = setup({ on: ['upstream-unavailable'], chain: [stale] });
    await primeCache(layer, 'hello');
    const served = await call(layer(scripted('reset')), proxyRequest({ method: 'HEAD', path: '/items' }));
    expect(served.headers).toMatchObject({ 'content-length': '5', 'x-breakwater-fallback': 'stale' });
    expect(await bodyText(served)).toBe('');
  });

  it('keeps nothing from other methods, from 5xx or from fallback answers', async () => {
    const { events, layer } = setup({ on: ['upstream-unavailable'], chain: [stale, emptyList] });
    await primeCache(layer, 'posted', proxyRequest({ method: 'POST', path: '/items' }));
    await bodyText(await call(layer(scripted(503)), proxyRequest({ path: '/items' })));
    await bodyText(await call(layer(scripted('reset')), proxyRequest({ path: '/items' })));
    events.length = 0;
    const served = await call(layer(scripted('reset')), proxyRequest({ path: '/items' }));
    expect(served.fallback).toBe('static');
    expect(events).toEqual(fallbackEvents(['stale', 'failure'], ['static', 'success']));
  });

  it('keeps nothing while the body has not ended', async () => {
    const { layer } = setup({ on: ['upstream-unavailable'], chain: [stale] });
    await call(layer(scripted(200)), proxyRequest({ path: '/items' }));
    await expect(call(layer(scripted('reset')), proxyRequest({ path: '/items' }))).rejects.toThrow(ProxyError);
  });
});

describe('fallback layer: wiring', () => {
  it('refuses a staleCache step without a cache and an upstream step without failover', () => {
    expect(() => setup({ on: ['timeout'], chain: [stale] }, { cache: false })).toThrow(/staleCache fallback needs a cache/);
    expect(() => setup({ on: ['timeout'], chain: [failoverStep] })).toThrow(/upstream fallback needs a failover handler/);
  });
});
