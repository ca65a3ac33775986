import { describe, expect, it } from 'vitest';
import { callFailure, matchesFailOn, matchesRetryOn, type AttemptOutcome } from '../../src/exchange/outcome.ts';

const status = (code: number): AttemptOutcome => ({ kind: 'response', status: code });
const failed = (failure: 'connect-failure' | 'reset' | 'timeout'): AttemptOutcome => ({ kind: 'failure', failure });

describe('retryOn', () => {
  it('matches named failures only when listed', () => {
    expect(matchesRetryOn(failed('reset'), ['reset'])).toBe(true);
    expect(matchesRetryOn(failed('timeout'), ['reset', 'connect-failure'])).toBe(false);
  });

  it('matches statuses by code, 5xx and gateway-error', () => {
    expect(matchesRetryOn(status(503), [503])).toBe(true);
    expect(matchesRetryOn(status(500), [503])).toBe(false);
    expect(matchesRetryOn(status(500), ['5xx'])).toBe(true);
    expect(matchesRetryOn(status(504), ['gateway-error'])).toBe(true);
    expect(matchesRetryOn(status(500), ['gateway-error'])).toBe(false);
    expect(matchesRetryOn(status(429), [429])).toBe(true);
    expect(matchesRetryOn(status(200), ['5xx', 'gateway-error', 503])).toBe(false);
  });

  it('never matches a status against a failure kind', () => {
    expect(matchesRetryOn(status(503), ['reset', 'timeout', 'connect-failure'])).toBe(false);
    expect(matchesRetryOn(failed('reset'), ['5xx', 503])).toBe(false);
  });
});

describe('failOn', () => {
  it('counts 5xx responses only when 5xx is listed', () => {
    expect(matchesFailOn(status(502), ['5xx'])).toBe(true);
    expect(matchesFailOn(status(502), ['reset'])).toBe(false);
    expect(matchesFailOn(status(404), ['5xx'])).toBe(false);
  });

  it('counts listed failure kinds', () => {
    expect(matchesFailOn(failed('timeout'), ['timeout'])).toBe(true);
    expect(matchesFailOn(failed('connect-failure'), ['5xx', 'reset'])).toBe(false);
  });
});

describe('gRPC outcomes', () => {
  const grpcStatus = (code: number, http = 200): AttemptOutcome => ({ kind: 'response', status: http, grpcStatus: code });

  it('matches a gRPC status by the name retryOn gives it, and nothing else', () => {
    expect(matchesRetryOn(grpcStatus(14), ['unavailable'])).toBe(true);
    expect(matchesRetryOn(grpcStatus(4), ['deadline-exceeded'])).toBe(true);
    expect(matchesRetryOn(grpcStatus(8), ['resource-exhausted'])).toBe(true);
    expect(matchesRetryOn(grpcStatus(1), ['cancelled'])).toBe(true);
    expect(matchesRetryOn(grpcStatus(13), ['internal'])).toBe(true);
    expect(matchesRetryOn(grpcStatus(13), ['unavailable', 'cancelled'])).toBe(false);
    // An HTTP 200 carrying a failed gRPC status is no 5xx to retryOn.
    expect(matchesRetryOn(grpcStatus(14), ['5xx', 'gateway-error', 503])).toBe(false);
    expect(matchesRetryOn(status(503), ['unavailable'])).toBe(false);
  });

  it('counts a gRPC status named in failOn, and the server errors under 5xx', () => {
    expect(matchesFailOn(grpcStatus(14), ['unavailable'])).toBe(true);
    expect(matchesFailOn(grpcStatus(14), ['internal'])).toBe(false);
    for (const code of [2, 4, 13, 14, 15]) expect(matchesFailOn(grpcStatus(code), ['5xx'])).toBe(true);
    // The caller's own mistakes, and OK, say nothing of the server.
    for (const code of [0, 3, 5, 7, 12, 16]) expect(matchesFailOn(grpcStatus(code), ['5xx'])).toBe(false);
  });

  it('gives a gRPC server error to a fallback on 5xx', () => {
    expect(callFailure({ kind: 'response', status: 200, grpcStatus: 14 })).toBe('5xx');
    expect(callFailure({ kind: 'response', status: 200, grpcStatus: 5 })).toBeUndefined();
    expect(callFailure({ kind: 'response', status: 200, grpcStatus: 0 })).toBeUndefined();
  });
});
