import { LRUCache } from 'lru-cache';
import type { ProxyRequest, UpstreamResponse } from '../../exchange/request.ts';
import { bufferedBody, statusHasBody, teeBody } from '../../exchange/body.ts';
import { endToEndHeaders } from '../../exchange/headers.ts';

// The last good answer per URL, served when the upstream fails (like RFC 5861's
// stale-if-error, chosen by the operator for the route). It is shared by every caller of the
// route, so it follows RFC 9111's rules for a shared cache on what may be stored; freshness
// (max-age, no-cache, must-revalidate) does not apply: an entry is only ever served as an
// error fallback, labelled stale, for as long as the route's `maxAge` allows.

export interface StaleCacheLimits {
  /** Entries kept per route; the least recently used goes first. */
  readonly maxEntries: number;
  /** Bytes kept per route (bodies and headers). */
  readonly maxBytes: number;
  /** Largest body stored; a longer one streams through and is not kept. */
  readonly maxEntryBytes: number;
}

export const defaultStaleCacheLimits: StaleCacheLimits = {
  maxEntries: 1000,
  maxBytes: 16 * 1024 * 1024,
  maxEntryBytes: 1024 * 1024,
};

type RequestHead = Pick<ProxyRequest, 'method' | 'path' | 'headers'>;
type ResponseHeaders = UpstreamResponse['headers'];

interface StaleEntry {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** Null when stored from a HEAD response: the entry can answer HEAD only. */
  readonly body: Buffer | null;
  readonly storedAt: number;
  /** The Age the response already had (a cache in front of the upstream), in seconds. */
  readonly ageAtStorage: number;
  /** The request's values of the headers the response's Vary names: a later request must match them. */
  readonly varied: readonly (readonly [string, string | undefined])[];
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** A request header's value from the flat [name, value, ...] list, repeated ones joined. */
function requestHeader(headers: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== name) continue;
    value = value === undefined ? headers[i + 1]! : `${value}, ${headers[i + 1]!}`;
  }
  return value;
}

function tokens(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((token) => token.trim().toLowerCase())
    .filter((token) => token !== '');
}

/** Cache-Control directive names, without their arguments. */
function cacheDirectives(headers: ResponseHeaders): Set<string> {
  return new Set(tokens(headerText(headers['cache-control'])).map((directive) => directive.split('=')[0]!.trim()));
}

/** The key of a URL: method-independent, so a GET's entry also answers HEAD. */
export function staleCacheKey(request: RequestHead): string {
  return `${(requestHeader(request.headers, 'host') ?? '').toLowerCase()}${request.path}`;
}

/**
 * Whether a response may be stored for later callers: only 2xx answers to GET and HEAD,
 * nothing the upstream marked no-store or private, nothing that sets a cookie, nothing that
 * varies on everything, nothing announced larger than the entry limit, and nothing answered
 * to a caller's credentials unless the upstream said it may be shared (RFC 9111 section 3.5).
 */
export function isStorable(request: RequestHead, response: Pick<UpstreamResponse, 'status' | 'headers'>, maxEntryBytes: number): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  // 206 is a part of the resource, not an answer to a plain GET of it.
  if (response.status < 200 || response.status > 299 || response.status === 206) return false;
  const directives = cacheDirectives(response.headers);
  if (directives.has('no-store') || directives.has('private')) return false;
  if (response.headers['set-cookie'] !== undefined) return false;
  const credentials = requestHeader(request.headers, 'authorization') !== undefined || requestHeader(request.headers, 'cookie') !== undefined;
  if (credentials && !directives.has('public') && !directives.has('s-maxage')) return false;
  if (tokens(headerText(response.headers.vary)).includes('*')) return false;
  const announced = Number(headerText(response.headers['content-length']));
  return !(request.method === 'GET' && announced > maxEntryBytes);
}

function entrySize(key: string, entry: StaleEntry): number {
  let size = key.length + (entry.body?.length ?? 0);
  for (const [name, value] of Object.entries(entry.headers)) size += name.length + String(value).length;
  return size;
}

/** One route's stale answers, bounded by entries and bytes, least recently used evicted first. */
export class StaleCache {
  /** How long an entry is kept; a lookup may ask for younger ones. */
  readonly maxAgeMs: number;
  readonly limits: StaleCacheLimits;
  readonly #entries: LRUCache<string, StaleEntry>;

  constructor(maxAgeMs: number, limits: StaleCacheLimits = defaultStaleCacheLimits) {
    this.maxAgeMs = maxAgeMs;
    this.limits = limits;
    this.#entries = new LRUCache<string, StaleEntry>({
      max: limits.maxEntries,
      maxSize: limits.maxBytes,
      sizeCalculation: (entry, key) => Math.max(1, entrySize(key, entry)),
    });
  }

  /**
   * Passes `response` on unchanged for the client, and when it is a storable answer to
   * `request`, keeps a copy of its body as it streams and stores it once it ends whole. `now`
   * is when the response head arrived.
   */
  capture(request: RequestHead, response: UpstreamResponse, now: number): UpstreamResponse {
    if (!isStorable(request, response, this.limits.maxEntryBytes)) return response;
    const key = staleCacheKey(request);
    // RFC 9111 section 3.1: fields about the connection the answer came on, and its framing,
    // are not part of the stored answer (a stored body is served with its length).
    const headers = endToEndHeaders(response.headers);
    const varied = tokens(headerText(response.headers.vary)).map((name) => [name, requestHeader(request.headers, name)] as const);
    const age = Number(headerText(response.headers.age));
    const ageAtStorage = Number.isInteger(age) && age > 0 ? age : 0;
    const isGet = request.method === 'GET';
    const body = teeBody(response.body, isGet ? this.limits.maxEntryBytes : 0, (end) => {
      if (end.kind !== 'whole' || (!isGet && this.#holdsFreshBody(key, now))) return;
      this.#entries.set(key, { status: response.status, headers, body: isGet ? end.bytes : null, storedAt: now, ageAtStorage, varied });
    });
    return { ...response, body };
  }

  /** A HEAD answer never replaces an entry that can still answer GET. */
  #holdsFreshBody(key: string, now: number): boolean {
    const existing = this.#entries.peek(key);
    return existing !== undefined && existing.body !== null && now - existing.storedAt <= this.maxAgeMs;
  }

  /**
   * The stored answer to `request` if there is one at most `maxAgeMs` old, as a response
   * with an Age header and `x-breakwater-fallback: stale`.
   */
  lookup(request: RequestHead, now: number, maxAgeMs: number = this.maxAgeMs): UpstreamResponse | undefined {
    if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
    const key = staleCacheKey(request);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    const residentMs = now - entry.storedAt;
    if (residentMs > this.maxAgeMs) {
      this.#entries.delete(key);
      return undefined;
    }
    if (residentMs > maxAgeMs) return undefined;
    if (entry.body === null && request.method !== 'HEAD') return undefined;
    for (const [name, value] of entry.varied) {
      if (requestHeader(request.headers, name) !== value) return undefined;
    }
    const headers: Record<string, string | string[]> = {
      ...entry.headers,
      age: String(entry.ageAtStorage + Math.floor(residentMs / 1000)),
      'x-breakwater-fallback': 'stale',
    };
    if (entry.body !== null && statusHasBody(entry.status)) headers['content-length'] = String(entry.body.length);
    return {
      status: entry.status,
      headers,
      body: bufferedBody(request.method === 'HEAD' ? null : entry.body),
      fallback: 'stale',
    };
  }
}
