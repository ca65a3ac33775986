import type { IdempotencyConfig } from '../../config/types.ts';
import { bufferedBody, teeBody } from '../../exchange/body.ts';
import { waitOrAbort } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { IdempotencyResult, PolicyEvent, PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type CallScope, type Handler, type Layer } from '../../exchange/handler.ts';
import { endToEndHeaders, headerValues } from '../../exchange/headers.ts';
import { bufferBody } from '../../exchange/request-body.ts';
import type { ProxyRequest, UpstreamResponse } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { RecordStore, StoredRecord, TakeResult } from '../../stores/store.ts';
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

const ignore = (): void => undefined;

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
  // One event per result, made once for the route: every keyed request emits one.
  const resultEvents = new Map<IdempotencyResult, PolicyEvent>();
  const counted = (result: IdempotencyResult, request: ProxyRequest): void => {
    let event = resultEvents.get(result);
    if (event === undefined) {
      event = { type: 'idempotency', route, result };
      resultEvents.set(result, event);
    }
    events.emit(event, request);
  };

  /** The store failed: refuse the request, or let it through without de-duplication. */
  function storeFailed(next: Handler, request: ProxyRequest, scope: CallScope, cause: unknown): Promise<UpstreamResponse> {
    counted('store_error', request);
    if (config.onStoreError === 'forward') return callHandler(next, request, scope);
    throw new ProxyError('idempotency_store_unavailable', { message: `the idempotency store could not be reached: ${(cause as Error).message}`, cause });
  }

  const release = (key: string, token: string): void => void records.release(key, token).catch(ignore);

  /** Takes `key` for this request, in progress until the request's deadline has passed. */
  function take(key: string, requestFingerprint: string, scope: CallScope): Promise<TakeResult> {
    const inProgress: IdempotencyMeta = { state: 'in-progress', fingerprint: requestFingerprint };
    return records.take(key, { meta: inProgress }, Math.max(1, Math.ceil(scope.dueAt - clock.now())) + inProgressGraceMs);
  }

  /** Goes through the route's policies as the key's first request; stores or releases the key by how it ends. */
  function asFirst(next: Handler, request: ProxyRequest, scope: CallScope, key: string, token: string, requestFingerprint: string): Promise<UpstreamResponse> {
    counted('first', request);
    return callHandler(next, request, scope).then(
      (response) => keepWhenWhole(response, key, token, requestFingerprint),
      (error: unknown) => {
        release(key, token);
        throw error;
      },
    );
  }

  /** The first request's response, with its body kept on the side to be stored once it has streamed whole. */
  function keepWhenWhole(response: UpstreamResponse, key: string, token: string, requestFingerprint: string): UpstreamResponse {
    if (!isStorable(response.status, response.fallback !== undefined)) {
      release(key, token);
      return response;
    }
    const headers = endToEndHeaders(response.headers);
    const body = teeBody(response.body, config.maxResponseBytes, (end) => {
      if (end.kind !== 'whole') {
        release(key, token);
        return;
      }
      const meta: IdempotencyMeta = { state: 'completed', fingerprint: requestFingerprint, status: response.status, headers };
      // A failed write leaves the in-progress record to expire: repeats then run again.
      void records.replace(key, token, { meta, body: end.bytes }, config.ttlMs).catch(ignore);
    });
    return { ...response, body };
  }

  /**
   * The common case without an async frame: the body is read whole, the key taken, and the
   * request goes on as the key's first. A key already held goes to asDuplicate.
   */
  function deduplicate(next: Handler, request: ProxyRequest, scope: CallScope, callerKey: string): Promise<UpstreamResponse> {
    const body = request.body;
    if (body === null || Buffer.isBuffer(body)) return withBody(next, request, scope, callerKey, body);
    return bufferBody(request, body, config.maxRequestBytes, scope).then((buffered) => {
      if (!buffered) {
        throw new ProxyError('payload_too_large', {
          message: `a request with an idempotency key is read whole to compare it with a repeat, and this body is over the route's limit of ${config.maxRequestBytes} bytes`,
        });
      }
      return withBody(next, request, scope, callerKey, request.body as Buffer);
    });
  }

  /** Once the body is whole (it is part of the fingerprint): takes the key. */
  function withBody(next: Handler, request: ProxyRequest, scope: CallScope, callerKey: string, body: Buffer | null): Promise<UpstreamResponse> {
    const requestFingerprint = fingerprint(request.method, request.path, body);
    const key = recordKey(route, callerKey);
    return take(key, requestFingerprint, scope).then(
      (taken) =>
        taken.taken ? asFirst(next, request, scope, key, taken.token, requestFingerprint) : asDuplicate(next, request, scope, key, requestFingerprint, taken.current),
      (error: unknown) => storeFailed(next, request, scope, error),
    );
  }

  /** The key is held by a record `found`: replay it, refuse, or (wait mode) look again until the first request's answer is stored. */
  async function asDuplicate(next: Handler, request: ProxyRequest, scope: CallScope, key: string, requestFingerprint: string, found: StoredRecord): Promise<UpstreamResponse> {
    let pollMs = firstPollMs;
    let current: StoredRecord | undefined = found;
    for (;;) {
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
      let taken: TakeResult;
      try {
        taken = await take(key, requestFingerprint, scope);
      } catch (error) {
        return storeFailed(next, request, scope, error);
      }
      if (taken.taken) return asFirst(next, request, scope, key, taken.token, requestFingerprint);
      current = taken.current;
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
