import type { IdempotencyConfig } from '../../config/types.ts';
import { bufferedBody, teeBody } from '../../exchange/body.ts';
import { waitOrAbort } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { IdempotencyResult, PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type CallScope, type Handler, type Layer } from '../../exchange/handler.ts';
import { endToEndHeaders, headerValues } from '../../exchange/headers.ts';
import { bufferBody } from '../../exchange/request-body.ts';
import type { ProxyRequest, UpstreamResponse } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { RecordStore, StoredRecord } from '../../stores/store.ts';
import { parseIdempotencyKey } from './key.ts';
import { asMeta, classifyDuplicate, fingerprint, isStorable, recordKey, type IdempotencyMeta } from './record.ts';

export interface IdempotencyDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
  readonly records: RecordStore;
}

// An in-progress record outlives the request's deadline by this much, so that the first
// request's answer can still be stored after its last byte; a replica that dies mid-request
// frees the key soon after the request could no longer have finished.
const inProgressGraceMs = 1_000;

// How often a duplicate in wait mode looks for the first request's answer: soon at first, then
// less often, never past its own deadline.
const firstPollMs = 10;
const maxPollMs = 200;

/** The reply for a duplicate whose first request finished: its stored response, marked as a replay. */
function replay(meta: Extract<IdempotencyMeta, { state: 'completed' }>, stored: StoredRecord): UpstreamResponse {
  return {
    status: meta.status,
    headers: { ...(meta.headers as Record<string, string | string[]>), 'idempotent-replayed': 'true' },
    body: bufferedBody(stored.body ?? null),
  };
}

/**
 * De-duplicates requests that carry an idempotency key, across every replica that shares the
 * store: the first request with a key takes it and goes through the route's policies; its final
 * answer (below 500, made by the upstream, within maxResponseBytes) is stored for `ttl`, and a
 * repeat with the same request gets that answer back without reaching the upstream. A repeat
 * with a different request is refused with 422, and one that arrives while the first is still
 * running with 409 (or, in wait mode, gets the answer once it is stored). A first request that
 * ends in a 5xx, a reply of Breakwater's own, or a client gone releases the key. The layer is
 * outermost, so a replay is never disturbed by the policies below it.
 */
export function idempotencyLayer(route: string, config: IdempotencyConfig, deps: IdempotencyDeps): Layer {
  const { clock, events, records } = deps;
  const methods = new Set(config.methods);
  const counted = (result: IdempotencyResult, request: ProxyRequest): void => events.emit({ type: 'idempotency', route, result }, request);

  /** The request's body, whole: it is part of the fingerprint. */
  async function wholeBody(request: ProxyRequest, scope: CallScope): Promise<Buffer | null> {
    const body = request.body;
    if (body === null || Buffer.isBuffer(body)) return body;
    if (await bufferBody(request, body, config.maxRequestBytes, scope.signal)) return request.body as Buffer;
    throw new ProxyError('payload_too_large', {
      message: `a request with an idempotency key is read whole to compare it with a repeat, and this body is over the route's limit of ${config.maxRequestBytes} bytes`,
    });
  }

  /** The store failed: refuse the request, or let it through without de-duplication. */
  function storeFailed(next: Handler, request: ProxyRequest, scope: CallScope, cause: unknown): Promise<UpstreamResponse> {
    counted('store_error', request);
    if (config.onStoreError === 'forward') return callHandler(next, request, scope);
    throw new ProxyError('idempotency_store_unavailable', { message: `the idempotency store could not be reached: ${(cause as Error).message}`, cause });
  }

  /** Goes through the route's policies as the key's first request; stores or releases the key by how it ends. */
  async function asFirst(next: Handler, request: ProxyRequest, scope: CallScope, key: string, token: string, requestFingerprint: string): Promise<UpstreamResponse> {
    counted('first', request);
    const release = (): void => void records.release(key, token).catch(() => undefined);
    let response: UpstreamResponse;
    try {
      response = await callHandler(next, request, scope);
    } catch (error) {
      release();
      throw error;
    }
    if (!isStorable(response.status, response.fallback !== undefined)) {
      release();
      return response;
    }
    const headers = endToEndHeaders(response.headers);
    const body = teeBody(response.body, config.maxResponseBytes, (end) => {
      if (end.kind !== 'whole') {
        release();
        return;
      }
      const meta: IdempotencyMeta = { state: 'completed', fingerprint: requestFingerprint, status: response.status, headers };
      // A failed write leaves the in-progress record to expire: repeats then run again.
      void records.replace(key, token, { meta, body: end.bytes }, config.ttlMs).catch(() => undefined);
    });
    return { ...response, body };
  }

  async function deduplicate(next: Handler, request: ProxyRequest, scope: CallScope, callerKey: string): Promise<UpstreamResponse> {
    const body = await wholeBody(request, scope);
    const requestFingerprint = fingerprint(request.method, request.path, body);
    const key = recordKey(route, callerKey);
    let pollMs = firstPollMs;
    for (;;) {
      const now = clock.now();
      const inProgress: IdempotencyMeta = { state: 'in-progress', fingerprint: requestFingerprint };
      let taken;
      try {
        taken = await records.take(key, { meta: inProgress }, Math.max(1, Math.ceil(scope.dueAt - now)) + inProgressGraceMs);
      } catch (error) {
        return storeFailed(next, request, scope, error);
      }
      if (taken.taken) return asFirst(next, request, scope, key, taken.token, requestFingerprint);

      let current: StoredRecord | undefined = taken.current;
      // Wait mode: look again until the first request's answer is stored, its key released, or
      // this request's own deadline comes.
      for (;;) {
        const meta = asMeta(current.meta);
        if (meta === undefined) return storeFailed(next, request, scope, new Error('the record under this key was not written by Breakwater'));
        const duplicate = classifyDuplicate(meta, requestFingerprint);
        if (duplicate.kind === 'mismatch') {
          counted('mismatch', request);
          throw new ProxyError('idempotency_key_reused');
        }
        if (duplicate.kind === 'completed') {
          counted('replayed', request);
          return replay(duplicate.meta, current);
        }
        const waitMs = Math.min(pollMs, scope.dueAt - clock.now());
        if (config.whileInProgress === 'reject' || waitMs <= 0) {
          counted('conflict', request);
          throw new ProxyError('idempotency_in_progress');
        }
        await waitOrAbort(clock, waitMs, scope.signal);
        pollMs = Math.min(pollMs * 2, maxPollMs);
        try {
          current = await records.get(key);
        } catch (error) {
          return storeFailed(next, request, scope, error);
        }
        // The first request released its key (it failed): this one may take it.
        if (current === undefined) break;
      }
    }
  }

  return (next) => (request, scope) => {
    if (!methods.has(request.method)) return next(request, scope);
    const parsed = parseIdempotencyKey(headerValues(request.headers, config.header));
    switch (parsed.kind) {
      case 'key':
        return deduplicate(next, request, scope, parsed.key);
      case 'absent':
        if (config.required) {
          counted('missing', request);
          return Promise.reject(new ProxyError('idempotency_key_missing', { message: `this route requires an ${config.header} header on ${request.method} requests` }));
        }
        counted('bypassed', request);
        return next(request, scope);
      case 'invalid':
        counted('missing', request);
        return Promise.reject(new ProxyError('bad_request', { message: parsed.why }));
      default:
        return parsed satisfies never;
    }
  };
}
