import type { ServerResponse } from 'node:http';
import type { ProxyRequest, UpstreamResponse } from '../../src/proxy/context.ts';
import { ProxyError, type AttemptFailure } from '../../src/proxy/errors.ts';
import type { Handler } from '../../src/stack/handler.ts';

/** A response whose body records whether it was piped or discarded. */
export function response(status: number, headers: Record<string, string> = {}, text = ''): UpstreamResponse & { discarded: boolean } {
  const result = {
    status,
    headers,
    discarded: false,
    body: {
      pipeTo: (sink: ServerResponse) => {
        sink.end(text);
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
export function scripted(...steps: Step[]): Handler & { calls: ProxyRequest[]; responses: ReturnType<typeof response>[] } {
  const calls: ProxyRequest[] = [];
  const responses: ReturnType<typeof response>[] = [];
  const handler = (request: ProxyRequest): Promise<UpstreamResponse> => {
    calls.push(request);
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
  return Object.assign(handler, { calls, responses });
}

/** A terminal handler that never answers until the request's attempt is cancelled. */
export function hanging(): Handler & { calls: ProxyRequest[] } {
  const calls: ProxyRequest[] = [];
  const handler = (request: ProxyRequest): Promise<UpstreamResponse> => {
    calls.push(request);
    request.attempts += 1;
    return new Promise((_resolve, reject) => {
      request.cancelAttempt = (reason) => reject(reason);
    });
  };
  return Object.assign(handler, { calls });
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
    attemptDeadlineAt: 16_000,
    attempts: 0,
    abortReason: null,
    cancelAttempt: null,
    ...overrides,
  };
}
