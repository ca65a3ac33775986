import type { DeadLetterConfig } from '../../config/types.ts';
import { abortReason } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { DeadLetterDrop, PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type Layer } from '../../exchange/handler.ts';
import { headerValues } from '../../exchange/headers.ts';
import { BodyCapture, type CapturedBody } from '../../exchange/request-body.ts';
import { onBodyEnd, type ProxyRequest, type UpstreamResponse } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import { StoreError, type LogStore } from '../../stores/store.ts';
import {
  DEAD_LETTER_STREAM,
  deadLetterMeta,
  decideCapture,
  keptBody,
  storedMeta,
  type CaptureDecision,
  type CapturedRequest,
} from './capture.ts';

export interface DeadLetterDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
  /** The log of the route's store. */
  readonly log: LogStore;
}

// Writes waiting on the store are bounded, so that a store that stops answering cannot make the
// dead letters of an outage pile up in memory: past either bound, new ones are dropped.
const maxPendingWrites = 1000;
const maxPendingBytes = 64 * 1024 * 1024;

// A client still sending its body this long after its answer is not going to finish it soon:
// its dead letter is written without the body rather than held in memory for as long as the
// client keeps the connection open.
const bodyWaitMs = 30_000;

// `traceparent: 00-<trace id>-<parent id>-<flags>`
const traceparent = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;

/** The request's trace id: its trace's, else the caller's from its traceparent, so a dead letter joins the caller's trace. */
function traceIdOf(request: ProxyRequest): string | undefined {
  if (request.trace?.traceId !== undefined) return request.trace.traceId;
  const value = headerValues(request.headers, 'traceparent')[0];
  return value === undefined ? undefined : traceparent.exec(value.trim().toLowerCase())?.[1];
}

/** The request's Content-Length, when it declares one. */
function declaredLength(headers: readonly string[]): number | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length !== 14 || name.toLowerCase() !== 'content-length') continue;
    const length = Number(headers[i + 1]);
    return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
  }
  return undefined;
}

/** The request as it is kept: read when it has failed, after every policy below ran. */
function capturedRequest(request: ProxyRequest): CapturedRequest {
  return {
    route: request.route,
    upstream: request.upstream,
    listener: request.listener,
    method: request.method,
    path: request.path,
    headers: request.headers,
    requestId: request.requestId,
    traceId: traceIdOf(request),
    attempts: request.attempts,
  };
}

/**
 * Keeps the requests whose final outcome, after every policy below it (retries, fallbacks,
 * bulkhead, breaker), is one of the route's `on`, with their headers and body, in the route's
 * store: dead letters an operator can inspect and replay. The caller's answer is untouched and
 * never waits: the body is copied while it streams (up to maxBodyBytes), and the entry is written
 * once the answer is on its way. A request the layer cannot keep (the route is full, the store
 * fails or lags) is dropped and reported, never failed.
 */
export function deadLetterLayer(route: string, config: DeadLetterConfig, deps: DeadLetterDeps): Layer {
  const { clock, events, log } = deps;
  const keep: ReadonlySet<string> = new Set(config.keepHeaders);
  let pendingWrites = 0;
  let pendingBytes = 0;

  const dropped = (cause: DeadLetterDrop, detail: string): void => events.emit({ type: 'dead-letter-dropped', route, cause, detail });

  /** Writes the dead letter once its body is known; reports, never throws. */
  function write(request: CapturedRequest, decision: Extract<CaptureDecision, { capture: true }>, body: Buffer | null | Promise<CapturedBody>): void {
    const kept = (settled: Buffer | null | CapturedBody): void => {
      const content = keptBody(settled, config.maxBodyBytes);
      const size = content.bytes?.length ?? 0;
      if (pendingWrites >= maxPendingWrites || pendingBytes + size > maxPendingBytes) {
        dropped('store_error', `the store has not kept up: ${pendingWrites} dead letters are still being written`);
        return;
      }
      pendingWrites += 1;
      pendingBytes += size;
      const entry = { partition: route, tags: { reason: decision.reason }, meta: storedMeta(deadLetterMeta(request, decision, content, keep)), ...(content.bytes === undefined ? {} : { body: content.bytes }) };
      log.append(DEAD_LETTER_STREAM, entry, config.maxEntries).then(
        (result) => {
          if (result.appended) events.emit({ type: 'dead-letter', route, reason: decision.reason });
          else dropped('full', `the route holds its maxEntries of ${config.maxEntries} dead letters`);
        },
        (error: unknown) => {
          const code = error instanceof StoreError ? error.code : undefined;
          dropped(code === 'too_large' ? 'too_large' : 'store_error', error instanceof Error ? error.message : String(error));
        },
      ).finally(() => {
        pendingWrites -= 1;
        pendingBytes -= size;
      });
    };
    if (body instanceof Promise) void body.then(kept);
    else kept(body);
  }

  /** The body as it is kept: as it was, or once the copy of a streaming one is known. */
  function keptBodyOf(source: ProxyRequest['body'], capture: BodyCapture | undefined): Buffer | null | Promise<CapturedBody> {
    if (capture === undefined) return source as Buffer | null;
    const cancel = clock.setTimer(bodyWaitMs, () => capture.abandon());
    return capture.settle().finally(cancel);
  }

  function afterResponse(response: UpstreamResponse, request: ProxyRequest, source: ProxyRequest['body'], capture: BodyCapture | undefined): UpstreamResponse {
    const decision = decideCapture({ kind: 'response', status: response.status, fallback: response.fallback !== undefined }, config.on);
    if (!decision.capture) {
      capture?.release();
      return response;
    }
    const captured = capturedRequest(request);
    const settled = keptBodyOf(source, capture);
    // Written once the response has streamed to the caller (or failed, or was dropped).
    return onBodyEnd(response, () => write(captured, decision, settled));
  }

  function afterError(error: unknown, request: ProxyRequest, signal: AbortSignal, source: ProxyRequest['body'], capture: BodyCapture | undefined): never {
    const reply = error instanceof ProxyError ? error : new ProxyError('upstream_unavailable', { cause: error });
    const decision = decideCapture({ kind: 'error', reason: reply.reason, status: reply.status, callerGone: callerLeft(signal) }, config.on);
    if (!decision.capture) {
      capture?.release();
      throw error;
    }
    const captured = capturedRequest(request);
    const settled = keptBodyOf(source, capture);
    // The listener writes its reply as this rejection reaches it; the write waits for the
    // next turn of the event loop, after that reply.
    clock.setTimer(0, () => write(captured, decision, settled));
    throw error;
  }

  return (next) => (request, scope) => {
    // A replay's outcome is its replayer's to record: it is already a dead letter.
    if (request.replayOf !== undefined) return next(request, scope);
    const source = request.body;
    const capture = source === null || Buffer.isBuffer(source) ? undefined : new BodyCapture(source, config.maxBodyBytes, declaredLength(request.headers));
    return callHandler(next, request, scope).then(
      (response) => {
        // Only a 5xx response can be a dead letter: the common answer goes on at once.
        if (response.status < 500) {
          capture?.release();
          return response;
        }
        return afterResponse(response, request, source, capture);
      },
      (error: unknown) => afterError(error, request, scope.signal, source, capture),
    );
  };
}

/**
 * Whether the request's signal was aborted because its client left: the listener aborts it for
 * that or for the request's deadline, and a deadline's abort carries a timeout reason.
 */
function callerLeft(signal: AbortSignal): boolean {
  if (!signal.aborted) return false;
  const reason = abortReason(signal).reason;
  return reason !== 'timeout' && reason !== 'deadline_exceeded';
}
