import type { AttemptFailure } from '../../src/exchange/errors.ts';
import type { AttemptOutcome } from '../../src/exchange/outcome.ts';
import type { AttemptRecord, RequestRecord } from '../../src/exchange/record.ts';

/** A finished request's record, as the listener makes it: a 200 from the upstream unless overridden. */
export function requestRecord(overrides: Partial<RequestRecord> = {}): RequestRecord {
  return {
    listener: 'outbound',
    protocol: 'http1',
    route: 'charge',
    upstream: 'payments',
    method: 'POST',
    path: '/charge',
    status: 200,
    grpcStatus: undefined,
    reason: undefined,
    detail: undefined,
    fallback: undefined,
    durationMs: 12,
    attempts: 1,
    requestId: 'req-1',
    traceId: undefined,
    spanId: undefined,
    ...overrides,
  };
}

/** An attempt that got a response head with `status`. */
export function answered(status: number): AttemptOutcome {
  return { kind: 'response', status };
}

/** An attempt that failed before a response head. */
export function failed(failure: AttemptFailure): AttemptOutcome {
  return { kind: 'failure', failure };
}

/** An attempt's record: a 200 unless overridden. */
export function attemptRecord(overrides: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    route: 'charge',
    upstream: 'payments',
    endpoint: 'http://127.0.0.1:8080',
    outcome: answered(200),
    durationMs: 4,
    remainingMs: 2000,
    ...overrides,
  };
}
