import { getEventListeners } from 'node:events';
import { abortReason } from '../../src/exchange/cancel.ts';
import { ProxyError, type AttemptFailure } from '../../src/exchange/errors.ts';
import type { CallScope, Handler } from '../../src/exchange/handler.ts';
import type { BodySink, ProxyRequest, UpstreamResponse } from '../../src/exchange/request.ts';

/** A response whose body records whether it was piped or discarded. */
export function response(status: number, headers: Record<string, string> = {}, text = ''): UpstreamResponse & { discarded: boolean } {
  const result = {
    status,
    headers,
    discarded: false,
    body: {
      pipeTo: (sink: BodySink) => {
        if (text === '') sink.end();
        else sink.end(Buffer.from(text));
        return Promise.resolve();
      },
      discard: () => {
        result.discarded = true;
      },
    },
  };
  return result;
}

export function failure(attemptFailure: AttemptFailure): ProxyError {
  return attemptFailure === 'timeout'
    ? new ProxyError('timeout', { attemptFailure })
    : new ProxyError('upstream_unavailable', { attemptFailure });
}

export type Step = number | AttemptFailure | ProxyError | (() => Promise<UpstreamResponse>);

/**
 * A terminal handler that answers each attempt with the next step: a status code, an attempt
 * failure, a ProxyError, or a function; the last step repeats. Records every call.
 */
export function scripted(...steps: Step[]): Handler & { calls: ProxyRequest[]; scopes: CallScope[]; responses: ReturnType<typeof response>[] } {
  const calls: ProxyRequest[] = [];
  const scopes: CallScope[] = [];
  const responses: ReturnType<typeof response>[] = [];
  const handler = (request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse> => {
    calls.push(request);
    scopes.push(scope);
    request.attempts += 1;
    const step = steps[Math.min(calls.length - 1, steps.length - 1)]!;
    if (typeof step === 'number') {
      const made = response(step);
      responses.push(made);
      return Promise.resolve(made);
    }
    if (typeof step === 'function') return step();
    return Promise.reject(step instanceof ProxyError ? step : failure(step));
  };
  return Object.assign(handler, { calls, scopes, responses });
}

/** A terminal handler that never answers until its scope is aborted, and then fails with the abort's reason. */
export function hanging(): Handler & { calls: ProxyRequest[]; scopes: CallScope[] } {
  const calls: ProxyRequest[] = [];
  const scopes: CallScope[] = [];
  const handler = (request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse> => {
    calls.push(request);
    scopes.push(scope);
    request.attempts += 1;
    return new Promise((_resolve, reject) => {
      if (scope.signal.aborted) reject(abortReason(scope.signal));
      scope.signal.addEventListener('abort', () => reject(abortReason(scope.signal)), { once: true });
    });
  };
  return Object.assign(handler, { calls, scopes });
}

/** A request's scope as the listener makes it, with the abort the listener would call (its timeout, the client gone). */
export interface RequestScope extends CallScope {
  abort(reason: ProxyError): void;
}

const scopes = new WeakMap<ProxyRequest, RequestScope>();

/** The scope the listener gives `request`: one per request, so a test can abort it as the listener would. */
export function scopeOf(request: ProxyRequest): RequestScope {
  let scope = scopes.get(request);
  if (scope === undefined) {
    const controller = new AbortController();
    scope = { signal: controller.signal, dueAt: request.deadlineAt, abort: (reason) => controller.abort(reason) };
    scopes.set(request, scope);
  }
  return scope;
}

/** Calls `handler` as the listener does, in the request's own scope. */
export function call(handler: Handler, request: ProxyRequest): Promise<UpstreamResponse> {
  return handler(request, scopeOf(request));
}

/** Ends the request as the listener does when its deadline fires or its client leaves. */
export function abortRequest(request: ProxyRequest, reason: ProxyError): void {
  scopeOf(request).abort(reason);
}

/** Listeners still waiting on the request's abort: a finished layer leaves none behind. */
export function abortListeners(request: ProxyRequest): number {
  return getEventListeners(scopeOf(request).signal, 'abort').length;
}

/** A ProxyRequest as the listener builds it, for layer tests. */
export function proxyRequest(overrides: Partial<ProxyRequest> = {}): ProxyRequest {
  return {
    listener: 'outbound',
    route: 'test-route',
    upstream: 'test-upstream',
    method: 'GET',
    path: '/',
    headers: ['host', 'test'],
    body: null,
    requestId: 'req-1',
    startedAt: 1_000,
    deadlineAt: 16_000,
    attempts: 0,
    tried: [],
    ...overrides,
  };
}

/** A call under way: how it has settled so far, and a promise of its settling. */
export interface StartedCall {
  response?: UpstreamResponse;
  error?: ProxyError;
  settled: boolean;
  readonly done: Promise<void>;
}

/** Starts `handler` on `request`, in the request's own scope, and records how it settles without awaiting it. */
export function start(handler: Handler, request: ProxyRequest = proxyRequest()): StartedCall {
  const result: Omit<StartedCall, 'done'> = { settled: false };
  const done = call(handler, request).then(
    (made) => {
      result.response = made;
      result.settled = true;
    },
    (error: unknown) => {
      result.error = error as ProxyError;
      result.settled = true;
    },
  );
  return Object.assign(result, { done });
}
