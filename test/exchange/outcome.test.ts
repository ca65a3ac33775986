import { describe, expect, it } from 'vitest';
import { matchesFailOn, matchesRetryOn, type AttemptOutcome } from '../../src/exchange/outcome.ts';

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
