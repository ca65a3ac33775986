import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { FallbackConfig } from '../../../src/config/types.ts';
import type { ResponseSink } from '../../../src/exchange/body.ts';
import { StaleCaches } from '../../../src/policies/fallback/registry.ts';
import type { StaleCache } from '../../../src/policies/fallback/stale-cache.ts';
import { proxyRequest, response } from '../../support/handlers.ts';

const staticReply = { kind: 'response', status: 200, headers: {}, body: '' } as const;

function fallback(...maxAgesMs: number[]): FallbackConfig {
  return { on: ['timeout'], chain: [...maxAgesMs.map((maxAgeMs) => ({ kind: 'staleCache', maxAgeMs }) as const), staticReply] };
}

async function store(cache: StaleCache, path: string): Promise<void> {
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() }) as unknown as ResponseSink;
  await cache.capture(proxyRequest({ path }), response(200, {}, 'kept'), 1_000).body.pipeTo(sink);
}

describe('stale cache registry', () => {
  it('keeps a route’s cache and its entries across a reload that leaves maxAge alone', async () => {
    const caches = new StaleCaches();
    const before = caches.get('catalog', fallback(60_000))!;
    await store(before, '/items');
    const after = caches.get('catalog', { ...fallback(60_000), on: ['5xx'] });
    expect(after).toBe(before);
    expect(after!.lookup(proxyRequest({ path: '/items' }), 1_000)).toBeDefined();
  });

  it('starts afresh when maxAge changes', async () => {
    const caches = new StaleCaches();
    const before = caches.get('catalog', fallback(60_000))!;
    await store(before, '/items');
    const after = caches.get('catalog', fallback(120_000))!;
    expect(after).not.toBe(before);
    expect(after.maxAgeMs).toBe(120_000);
    expect(after.lookup(proxyRequest({ path: '/items' }), 1_000)).toBeUndefined();
  });

  it('keeps entries as long as the longest staleCache step asks', () => {
    expect(new StaleCaches().get('catalog', fallback(10_000, 60_000, 30_000))?.maxAgeMs).toBe(60_000);
  });

  it('gives no cache to a route without a staleCache step, and drops the one it had', () => {
    const caches = new StaleCaches();
    const first = caches.get('catalog', fallback(60_000));
    expect(caches.get('catalog', fallback())).toBeUndefined();
    expect(caches.get('catalog', fallback(60_000))).not.toBe(first);
  });

  it('keeps one cache per route and forgets routes no longer configured', () => {
    const caches = new StaleCaches({ maxEntries: 10, maxBytes: 10_000, maxEntryBytes: 100 });
    const catalog = caches.get('catalog', fallback(60_000))!;
    const prices = caches.get('prices', fallback(60_000))!;
    expect(prices).not.toBe(catalog);
    expect(catalog.limits.maxEntries).toBe(10);
    caches.retain(['prices']);
    expect(caches.get('prices', fallback(60_000))).toBe(prices);
    expect(caches.get('catalog', fallback(60_000))).not.toBe(catalog);
  });
});
