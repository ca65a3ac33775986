import { describe, expect, it } from 'vitest';
import type { RetryCondition, RetryConfig } from '../../../src/config/types.ts';
import type { AttemptOutcome } from '../../../src/exchange/outcome.ts';
import { decideRetry, hasIdempotencyKey, parseRetryAfter, type RetryQuestion } from '../../../src/policies/retry/decide.ts';

type Rules = Pick<RetryConfig, 'retryOn' | 'respectRetryAfter'>;

const contractDefaults: Rules = { retryOn: ['connect-failure', 'reset', 502, 503, 504], respectRetryAfter: true };
/** A whole second of wall time, so HTTP-dates (second resolution) are exact. */
const wallNow = 1_795_000_000_000;

const status = (code: number): AttemptOutcome => ({ kind: 'response', status: code });
const failed = (failure: 'connect-failure' | 'reset' | 'timeout'): AttemptOutcome => ({ kind: 'failure', failure });

function ask(outcome: AttemptOutcome, overrides: Partial<RetryQuestion> = {}, rules: Rules = contractDefaults) {
  return decideRetry(rules, {
    outcome,
    responseHeaders: {},
    method: 'GET',
    requestHeaders: ['host', 'payments'],
    remainingMs: 10_000,
    wallNow,
    ...overrides,
  });
}

const only = (...retryOn: RetryCondition[]): Rules => ({ retryOn, respectRetryAfter: true });

describe('retryOn conditions', () => {
  it('retries each failure kind only when listed', () => {
    for (const failure of ['connect-failure', 'reset', 'timeout'] as const) {
      expect(ask(failed(failure), {}, only(failure))).toEqual({ kind: 'retry', trigger: failure, retryAfterMs: undefined });
      expect(ask(failed(failure), {}, only('5xx', 'gateway-error', 503))).toEqual({ kind: 'final' });
    }
  });

  it('retries a listed status code', () => {
    expect(ask(status(503), {}, only(503))).toEqual({ kind: 'retry', trigger: 'status', retryAfterMs: undefined });
    expect(ask(status(500), {}, only(503))).toEqual({ kind: 'final' });
  });

  it('retries any 5xx under 5xx', () => {
    for (const code of [500, 501, 503, 599]) expect(ask(status(code), {}, only('5xx')).kind).toBe('retry');
  });

  it('retries 502, 503 and 504 under gateway-error, and no other 5xx', () => {
    for (const code of [502, 503, 504]) expect(ask(status(code), {}, only('gateway-error')).kind).toBe('retry');
    expect(ask(status(500), {}, only('gateway-error')).kind).toBe('final');
  });

  it('retries 429 when listed', () => {
    expect(ask(status(429), {}, only(429)).kind).toBe('retry');
    expect(ask(status(429)).kind).toBe('final');
  });

  it('never retries a success', () => {
    expect(ask(status(200), {}, only('5xx', 'gateway-error', 'reset')).kind).toBe('final');
  });

  it('never retries a 4xx other than 429, even when retryOn lists it', () => {
    for (const code of [400, 404, 409, 499]) expect(ask(status(code), {}, only(code, '5xx')).kind).toBe('final');
  });
});

describe('method rules', () => {
  it('retries the idempotent methods', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']) {
      expect(ask(status(503), { method }).kind).toBe('retry');
      expect(ask(failed('reset'), { method }).kind).toBe('retry');
    }
  });

  it('does not retry POST or PATCH once the request left', () => {
    for (const method of ['POST', 'PATCH']) {
      expect(ask(status(503), { method })).toEqual({ kind: 'give-up', reason: 'method' });
      expect(ask(failed('reset'), { method })).toEqual({ kind: 'give-up', reason: 'method' });
      expect(ask(failed('timeout'), { method }, only('timeout'))).toEqual({ kind: 'give-up', reason: 'method' });
    }
  });

  it('retries POST and PATCH on connect-failure: the request never left', () => {
    for (const method of ['POST', 'PATCH']) {
      expect(ask(failed('connect-failure'), { method })).toEqual({ kind: 'retry', trigger: 'connect-failure', retryAfterMs: undefined });
    }
  });

  it('retries POST and PATCH that carry an Idempotency-Key, in any case', () => {
    expect(ask(status(503), { method: 'POST', requestHeaders: ['host', 'x', 'Idempotency-Key', 'k-1'] }).kind).toBe('retry');
    expect(ask(failed('reset'), { method: 'PATCH', requestHeaders: ['idempotency-key', 'k-2'] }).kind).toBe('retry');
  });

  it('treats other methods as POST', () => {
    expect(ask(status(503), { method: 'PROPFIND' })).toEqual({ kind: 'give-up', reason: 'method' });
    expect(ask(status(503), { method: 'PROPFIND', requestHeaders: ['Idempotency-Key', 'k'] }).kind).toBe('retry');
  });

  it('does not ask about the method for an outcome that is not retried anyway', () => {
    expect(ask(status(404), { method: 'POST' })).toEqual({ kind: 'final' });
  });
});

describe('Retry-After', () => {
  it('waits the seconds a 429 or 503 asks for', () => {
    expect(ask(status(503), { responseHeaders: { 'retry-after': '2' } })).toEqual({ kind: 'retry', trigger: 'status', retryAfterMs: 2_000 });
    expect(ask(status(429), { responseHeaders: { 'retry-after': '0' } }, only(429))).toEqual({ kind: 'retry', trigger: 'status', retryAfterMs: 0 });
  });

  it('waits until an HTTP-date, by the wall clock', () => {
    const inThreeSeconds = new Date(wallNow + 3_000).toUTCString();
    expect(ask(status(503), { responseHeaders: { 'retry-after': inThreeSeconds } })).toMatchObject({ kind: 'retry', retryAfterMs: 3_000 });
  });

  it('retries at once when the HTTP-date is past', () => {
    const past = new Date(wallNow - 60_000).toUTCString();
    expect(ask(status(503), { responseHeaders: { 'retry-after': past } })).toMatchObject({ kind: 'retry', retryAfterMs: 0 });
  });

  it('gives up when Retry-After asks for as long as the deadline leaves, or longer', () => {
    expect(ask(status(503), { responseHeaders: { 'retry-after': '10' }, remainingMs: 10_000 })).toEqual({ kind: 'give-up', reason: 'retry-after' });
    expect(ask(status(503), { responseHeaders: { 'retry-after': '120' } })).toEqual({ kind: 'give-up', reason: 'retry-after' });
    expect(ask(status(503), { responseHeaders: { 'retry-after': '9' }, remainingMs: 10_000 }).kind).toBe('retry');
  });

  it('falls back to the backoff when Retry-After is absent or malformed', () => {
    for (const value of [undefined, 'soon', '-1', '1.5', 'Wed, 99 Foo 2026 99:99:99 GMT']) {
      expect(ask(status(503), { responseHeaders: { 'retry-after': value } })).toMatchObject({ kind: 'retry', retryAfterMs: undefined });
    }
  });

  it('is ignored when respectRetryAfter is off', () => {
    const rules: Rules = { ...contractDefaults, respectRetryAfter: false };
    expect(ask(status(503), { responseHeaders: { 'retry-after': '120' } }, rules)).toMatchObject({ kind: 'retry', retryAfterMs: undefined });
  });

  it('is read on 429 and 503 only', () => {
    expect(ask(status(502), { responseHeaders: { 'retry-after': '120' } })).toMatchObject({ kind: 'retry', retryAfterMs: undefined });
  });

  it('does not make an outcome retryable', () => {
    expect(ask(status(429), { responseHeaders: { 'retry-after': '1' } })).toEqual({ kind: 'final' });
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds', () => {
    expect(parseRetryAfter(' 5 ', wallNow)).toBe(5_000);
  });

  it('reads the three HTTP-date forms', () => {
    const at = Date.UTC(2026, 10, 18, 8, 49, 37);
    expect(parseRetryAfter('Wed, 18 Nov 2026 08:49:37 GMT', at - 1_000)).toBe(1_000);
    expect(parseRetryAfter('Wednesday, 18-Nov-26 08:49:37 GMT', at - 2_000)).toBe(2_000);
    // asctime has no zone: it is GMT whatever the host's time zone.
    expect(parseRetryAfter('Wed Nov 18 08:49:37 2026', at - 3_000)).toBe(3_000);
  });

  it('uses the first of repeated values', () => {
    expect(parseRetryAfter(['1', '7'], wallNow)).toBe(1_000);
    expect(parseRetryAfter([], wallNow)).toBeUndefined();
  });
});

describe('hasIdempotencyKey', () => {
  it('looks at header names only', () => {
    expect(hasIdempotencyKey(['x-note', 'idempotency-key'])).toBe(false);
    expect(hasIdempotencyKey(['IDEMPOTENCY-KEY', 'abc'])).toBe(true);
  });
});

describe('a route with its own idempotency key header', () => {
  it('retries a POST that carries a key in that header', () => {
    const question = {
      outcome: { kind: 'response', status: 503 } as const,
      responseHeaders: {},
      method: 'POST',
      requestHeaders: ['X-Request-Key', 'k1'],
      remainingMs: 1_000,
      wallNow: 0,
    };
    const config = { retryOn: [503] as const, respectRetryAfter: false };
    expect(decideRetry(config, question)).toEqual({ kind: 'give-up', reason: 'method' });
    expect(decideRetry(config, { ...question, keyHeader: 'x-request-key' })).toMatchObject({ kind: 'retry' });
  });
});

describe('gRPC calls', () => {
  const grpcStatus = (code: number): AttemptOutcome => ({ kind: 'response', status: 200, grpcStatus: code });
  const grpcCall: Partial<RetryQuestion> = { method: 'POST', grpc: true };

  it('retries a gRPC call when retryOn names a gRPC status: the route owner says its calls may be repeated', () => {
    expect(ask(grpcStatus(14), grpcCall, only('unavailable'))).toEqual({ kind: 'retry', trigger: 'status', retryAfterMs: undefined });
    // The same statement covers the other failures retryOn lists.
    expect(ask(failed('reset'), grpcCall, only('unavailable', 'reset'))).toEqual({ kind: 'retry', trigger: 'reset', retryAfterMs: undefined });
  });

  it('treats a gRPC call as the POST it is when retryOn names no gRPC status', () => {
    expect(ask(failed('reset'), grpcCall, only('reset'))).toEqual({ kind: 'give-up', reason: 'method' });
    expect(ask(failed('connect-failure'), grpcCall, only('connect-failure'))).toEqual({ kind: 'retry', trigger: 'connect-failure', retryAfterMs: undefined });
  });

  it('gives a plain POST no such licence, whatever retryOn names', () => {
    expect(ask(failed('reset'), { method: 'POST' }, only('unavailable', 'reset'))).toEqual({ kind: 'give-up', reason: 'method' });
  });

  it('waits what grpc-retry-pushback-ms asks, and does not retry on a negative or unreadable one (gRPC A6)', () => {
    const retry = (value: string, remainingMs = 10_000) =>
      ask(grpcStatus(14), { ...grpcCall, responseHeaders: { 'grpc-retry-pushback-ms': value }, remainingMs }, only('unavailable'));
    expect(retry('250')).toEqual({ kind: 'retry', trigger: 'status', retryAfterMs: 250 });
    expect(retry('-1')).toEqual({ kind: 'give-up', reason: 'retry-after' });
    expect(retry('soon')).toEqual({ kind: 'give-up', reason: 'retry-after' });
    expect(retry('5000', 4000)).toEqual({ kind: 'give-up', reason: 'retry-after' });
  });
});
