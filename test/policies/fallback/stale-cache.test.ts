import { describe, expect, it } from 'vitest';
import { StaleCache, staleCacheKey, type StaleCacheLimits } from '../../../src/policies/fallback/stale-cache.ts';
import type { ProxyRequest, UpstreamResponse } from '../../../src/exchange/request.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import { proxyRequest } from '../../support/handlers.ts';
import { memorySink } from '../../support/sinks.ts';

const maxAgeMs = 300_000;
const limits: StaleCacheLimits = { maxEntries: 100, maxBytes: 1_000_000, maxEntryBytes: 1_000 };

function request(path = '/items?page=1', method = 'GET', headers: string[] = []): ProxyRequest {
  return proxyRequest({ method, path, headers: ['Host', 'Catalog', ...headers] });
}

/** An upstream response whose body streams `parts` in turn and records whether it was discarded. */
function upstreamResponse(status: number, headers: UpstreamResponse['headers'], ...parts: string[]): UpstreamResponse {
  return {
    status,
    headers,
    body: {
      pipeTo(sink) {
        for (const part of parts) sink.write(Buffer.from(part));
        sink.end();
        return Promise.resolve();
      },
      discard: () => undefined,
    },
  };
}

/** Captures `response` to `req` at `now` and streams it to a client, as the fallback layer does. */
async function serve(cache: StaleCache, req: ProxyRequest, response: UpstreamResponse, now = 1_000): Promise<string> {
  const client = memorySink();
  await cache.capture(req, response, now).body.pipeTo(client.sink);
  return client.text();
}

async function bodyText(response: UpstreamResponse | undefined): Promise<string> {
  const client = memorySink();
  await response!.body.pipeTo(client.sink);
  return client.text();
}

describe('stale cache', () => {
  it('serves the last good GET answer with its headers and body, marked stale, Age 0', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(
      cache,
      request(),
      upstreamResponse(
        200,
        { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'x-unset': undefined, connection: 'keep-alive, x-hop', 'keep-alive': 'timeout=5', 'x-hop': '1' },
        '{"items":',
        '[1]}',
      ),
    );
    const hit = cache.lookup(request(), 1_000);
    // Fields about the original connection and its framing are not part of the stored answer.
    expect(Object.keys(hit?.headers ?? {}).sort()).toEqual(['age', 'content-length', 'content-type', 'x-breakwater-fallback']);
    expect(hit?.status).toBe(200);
    expect(hit?.fallback).toBe('stale');
    expect(hit?.headers).toMatchObject({
      'content-type': 'application/json',
      'x-breakwater-fallback': 'stale',
      age: '0',
      // The whole body is known now, so it gets a length even when it was chunked upstream.
      'content-length': '13',
    });
    expect(await bodyText(hit)).toBe('{"items":[1]}');
  });

  it('keeps the newest answer per URL', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request(), upstreamResponse(200, {}, 'old'), 1_000);
    await serve(cache, request(), upstreamResponse(200, {}, 'new'), 2_000);
    expect(await bodyText(cache.lookup(request(), 2_000))).toBe('new');
  });

  it('streams every chunk to the client as it comes, before the body has ended', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: UpstreamResponse = {
      status: 200,
      headers: {},
      body: {
        async pipeTo(sink) {
          sink.write(Buffer.from('first'));
          await gate;
          sink.end(Buffer.from('-second'));
        },
        discard: () => undefined,
      },
    };
    const client = memorySink();
    const piping = cache.capture(request(), slow, 1_000).body.pipeTo(client.sink);
    expect(client.text()).toBe('first');
    // Nothing is stored until the body has ended whole.
    expect(cache.lookup(request(), 1_000)).toBeUndefined();
    release();
    await piping;
    expect(client.text()).toBe('first-second');
    expect(await bodyText(cache.lookup(request(), 1_000))).toBe('first-second');
  });

  it('stores nothing when the body fails midway, and keeps the previous answer', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request(), upstreamResponse(200, {}, 'complete'));
    const broken: UpstreamResponse = {
      status: 200,
      headers: {},
      body: {
        pipeTo: (sink) => {
          sink.write(Buffer.from('trunc'));
          return Promise.reject(new ProxyError('upstream_unavailable', { attemptFailure: 'reset' }));
        },
        discard: () => undefined,
      },
    };
    await expect(cache.capture(request(), broken, 2_000).body.pipeTo(memorySink().sink)).rejects.toThrow(ProxyError);
    expect(await bodyText(cache.lookup(request(), 2_000))).toBe('complete');
  });

  it('counts Age in whole seconds since it was stored, on top of the Age it came with', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request('/a'), upstreamResponse(200, {}, 'a'), 1_000);
    await serve(cache, request('/b'), upstreamResponse(200, { age: '30' }, 'b'), 1_000);
    await serve(cache, request('/c'), upstreamResponse(200, { age: 'soon' }, 'c'), 1_000);
    expect(cache.lookup(request('/a'), 1_999)?.headers.age).toBe('0');
    expect(cache.lookup(request('/a'), 62_000)?.headers.age).toBe('61');
    expect(cache.lookup(request('/b'), 62_000)?.headers.age).toBe('91');
    expect(cache.lookup(request('/c'), 62_000)?.headers.age).toBe('61');
  });

  it('serves an entry up to maxAge old and forgets it after', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request(), upstreamResponse(200, {}, 'x'), 1_000);
    expect(cache.lookup(request(), 1_000 + maxAgeMs)).toBeDefined();
    expect(cache.lookup(request(), 1_001 + maxAgeMs)).toBeUndefined();
    // Forgotten for good, not just hidden at that instant.
    expect(cache.lookup(request(), 1_000)).toBeUndefined();
  });

  it('lets a lookup ask for a younger answer than the cache keeps', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request(), upstreamResponse(200, {}, 'x'), 1_000);
    expect(cache.lookup(request(), 11_001, 10_000)).toBeUndefined();
    expect(cache.lookup(request(), 11_001)).toBeDefined();
  });

  it('keys entries by host and path with query, not by method or host case', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request('/items?page=1'), upstreamResponse(200, {}, 'page 1'));
    expect(staleCacheKey(request('/items?page=1'))).toBe(staleCacheKey(proxyRequest({ method: 'HEAD', path: '/items?page=1', headers: ['host', 'catalog'] })));
    expect(cache.lookup(request('/items?page=2'), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/items'), 1_000)).toBeUndefined();
    expect(cache.lookup(proxyRequest({ path: '/items?page=1', headers: ['host', 'other'] }), 1_000)).toBeUndefined();
    expect(cache.lookup(proxyRequest({ path: '/items?page=1', headers: [] }), 1_000)).toBeUndefined();
  });

  it('stores only 2xx answers, and not 206 partial ones', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    for (const status of [206, 301, 404, 429, 500, 503]) {
      await serve(cache, request(`/${status}`), upstreamResponse(status, {}, 'x'));
      expect(cache.lookup(request(`/${status}`), 1_000), String(status)).toBeUndefined();
    }
    await serve(cache, request('/created'), upstreamResponse(201, {}, 'x'));
    expect(cache.lookup(request('/created'), 1_000)?.status).toBe(201);
  });

  it('gives a stored 204 no Content-Length', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request(), upstreamResponse(204, {}));
    const hit = cache.lookup(request(), 1_000);
    expect(hit?.status).toBe(204);
    expect(hit?.headers['content-length']).toBeUndefined();
  });

  it('stores answers to GET and HEAD only, and answers only GET and HEAD', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    const response = upstreamResponse(200, {}, 'created');
    const passed = cache.capture(request('/x', 'POST'), response, 1_000);
    // Not a candidate: the response is handed back as it was, no copy kept.
    expect(passed).toBe(response);
    expect(cache.lookup(request('/x', 'GET'), 1_000)).toBeUndefined();
    await serve(cache, request('/y'), upstreamResponse(200, {}, 'y'));
    expect(cache.lookup(request('/y', 'POST'), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/y', 'DELETE'), 1_000)).toBeUndefined();
  });

  it.each([
    ['no-store', { 'cache-control': 'no-store' }],
    ['no-store among other directives, any case', { 'cache-control': 'max-age=60, No-Store' }],
    ['private', { 'cache-control': 'private' }],
    ['private naming fields', { 'cache-control': 'private="x-user"' }],
    ['private in a repeated header', { 'cache-control': ['max-age=60', 'private'] }],
    ['a Set-Cookie', { 'set-cookie': 'session=1' }],
    ['Vary: *', { vary: '*' }],
  ])('never stores a response with %s', async (_name, headers) => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request(), upstreamResponse(200, headers, 'secret'));
    expect(cache.lookup(request(), 1_000)).toBeUndefined();
  });

  it('stores answers to requests with credentials only when the upstream marks them shareable', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    const withAuthorization = request('/me', 'GET', ['Authorization', 'Bearer t']);
    const withCookie = request('/cart', 'GET', ['Cookie', 'session=1']);
    await serve(cache, withAuthorization, upstreamResponse(200, {}, 'alice'));
    await serve(cache, withCookie, upstreamResponse(200, { 'cache-control': 'max-age=60' }, 'cart'));
    expect(cache.lookup(request('/me'), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/cart'), 1_000)).toBeUndefined();
    await serve(cache, withAuthorization, upstreamResponse(200, { 'cache-control': 'public' }, 'public'));
    await serve(cache, withCookie, upstreamResponse(200, { 'cache-control': 's-maxage=60' }, 'shared'));
    expect(await bodyText(cache.lookup(request('/me'), 1_000))).toBe('public');
    expect(await bodyText(cache.lookup(request('/cart'), 1_000))).toBe('shared');
  });

  it('serves an answer that varies on request headers only to requests that match them', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    const gzip = request('/v', 'GET', ['Accept-Encoding', 'gzip']);
    await serve(cache, gzip, upstreamResponse(200, { vary: 'Accept-Encoding, Accept-Language', 'content-encoding': 'gzip' }, 'zz'));
    expect(cache.lookup(gzip, 1_000)?.headers['content-encoding']).toBe('gzip');
    expect(cache.lookup(request('/v', 'GET', ['accept-encoding', 'identity']), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/v'), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/v', 'GET', ['Accept-Encoding', 'gzip', 'Accept-Language', 'fr']), 1_000)).toBeUndefined();
  });

  it('compares a varied header sent on several lines as one comma-joined value', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request('/v', 'GET', ['Accept-Encoding', 'gzip', 'accept-encoding', 'br']), upstreamResponse(200, { vary: 'accept-encoding' }, 'zz'));
    expect(cache.lookup(request('/v', 'GET', ['Accept-Encoding', 'gzip, br']), 1_000)).toBeDefined();
    expect(cache.lookup(request('/v', 'GET', ['Accept-Encoding', 'gzip']), 1_000)).toBeUndefined();
  });

  it('answers HEAD from a GET entry with its headers and no body', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    await serve(cache, request(), upstreamResponse(200, { 'content-type': 'text/plain' }, 'hello'));
    const hit = cache.lookup(request(undefined, 'HEAD'), 1_000);
    expect(hit?.headers).toMatchObject({ 'content-type': 'text/plain', 'content-length': '5', 'x-breakwater-fallback': 'stale' });
    expect(await bodyText(hit)).toBe('');
  });

  it('answers HEAD, never GET, from a HEAD entry, and lets no HEAD answer replace a GET one still fresh', async () => {
    const cache = new StaleCache(maxAgeMs, limits);
    const head = request('/h', 'HEAD');
    await serve(cache, head, upstreamResponse(200, { 'content-length': '42', etag: '"v1"' }));
    expect(cache.lookup(head, 1_000)?.headers).toMatchObject({ 'content-length': '42', etag: '"v1"' });
    expect(cache.lookup(request('/h'), 1_000)).toBeUndefined();

    await serve(cache, request('/h'), upstreamResponse(200, { etag: '"v2"' }, 'body'), 2_000);
    await serve(cache, head, upstreamResponse(200, { etag: '"v3"' }), 3_000);
    expect(cache.lookup(request('/h'), 3_000)?.headers.etag).toBe('"v2"');
    expect(cache.lookup(head, 3_000)?.headers.etag).toBe('"v2"');

    // Once the GET entry is past keeping, a HEAD answer takes its place.
    const later = 2_001 + maxAgeMs;
    await serve(cache, head, upstreamResponse(200, { etag: '"v4"' }), later);
    expect(cache.lookup(head, later)?.headers.etag).toBe('"v4"');
  });

  it('streams a body over the entry limit to the client whole, and keeps the previous answer', async () => {
    const cache = new StaleCache(maxAgeMs, { ...limits, maxEntryBytes: 10 });
    await serve(cache, request(), upstreamResponse(200, {}, '0123456789'));
    expect(await bodyText(cache.lookup(request(), 1_000))).toBe('0123456789');
    const delivered = await serve(cache, request(), upstreamResponse(200, {}, '0123456789', 'X'), 2_000);
    expect(delivered).toBe('0123456789X');
    expect(await bodyText(cache.lookup(request(), 2_000))).toBe('0123456789');
  });

  it('does not even copy a body whose Content-Length is over the entry limit', () => {
    const cache = new StaleCache(maxAgeMs, { ...limits, maxEntryBytes: 10 });
    const big = upstreamResponse(200, { 'content-length': '11' }, '01234567890');
    expect(cache.capture(request(), big, 1_000)).toBe(big);
  });

  it('evicts the least recently used entry beyond maxEntries', async () => {
    const cache = new StaleCache(maxAgeMs, { ...limits, maxEntries: 2 });
    await serve(cache, request('/1'), upstreamResponse(200, {}, '1'));
    await serve(cache, request('/2'), upstreamResponse(200, {}, '2'));
    // Serving /1 makes /2 the least recently used.
    expect(cache.lookup(request('/1'), 1_000)).toBeDefined();
    await serve(cache, request('/3'), upstreamResponse(200, {}, '3'));
    expect(cache.lookup(request('/2'), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/1'), 1_000)).toBeDefined();
    expect(cache.lookup(request('/3'), 1_000)).toBeDefined();
  });

  it('evicts least recently used entries to stay within maxBytes', async () => {
    // Each entry is its body plus its key ("catalog/n", 9 bytes) plus its headers (none).
    const cache = new StaleCache(maxAgeMs, { ...limits, maxBytes: 250 });
    const body = 'x'.repeat(100);
    await serve(cache, request('/1'), upstreamResponse(200, {}, body));
    await serve(cache, request('/2'), upstreamResponse(200, {}, body));
    expect(cache.lookup(request('/1'), 1_000)).toBeDefined();
    await serve(cache, request('/3'), upstreamResponse(200, {}, body));
    expect(cache.lookup(request('/2'), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/1'), 1_000)).toBeDefined();
    expect(cache.lookup(request('/3'), 1_000)).toBeDefined();
  });

  it('counts headers towards maxBytes', async () => {
    const cache = new StaleCache(maxAgeMs, { ...limits, maxBytes: 250 });
    await serve(cache, request('/1'), upstreamResponse(200, { 'x-big': 'h'.repeat(120), 'x-list': ['a', 'b'] }, 'x'));
    await serve(cache, request('/2'), upstreamResponse(200, { 'x-big': 'h'.repeat(120) }, 'x'));
    expect(cache.lookup(request('/1'), 1_000)).toBeUndefined();
    expect(cache.lookup(request('/2'), 1_000)).toBeDefined();
  });
});
