import { describe, expect, it } from 'vitest';
import type { FallbackTrigger } from '../../../src/config/types.ts';
import { callFailure } from '../../../src/exchange/outcome.ts';
import { triggersFallback } from '../../../src/policies/fallback/select.ts';
import type { LocalReason } from '../../../src/exchange/errors.ts';

const everyTrigger: FallbackTrigger[] = ['circuit-open', 'bulkhead-full', 'timeout', 'upstream-unavailable', '5xx'];
const error = (reason: LocalReason) => ({ kind: 'error', reason }) as const;
const status = (code: number) => ({ kind: 'response', status: code }) as const;

describe('fallback triggers', () => {
  it.each([
    ['circuit_open', 'circuit-open'],
    ['bulkhead_full', 'bulkhead-full'],
    ['timeout', 'timeout'],
    ['deadline_exceeded', 'timeout'],
    ['upstream_unavailable', 'upstream-unavailable'],
  ] as const)('%s is the %s trigger', (reason, trigger) => {
    expect(callFailure(error(reason))).toBe(trigger);
    expect(triggersFallback(error(reason), [trigger])).toBe(true);
    expect(triggersFallback(error(reason), everyTrigger.filter((other) => other !== trigger))).toBe(false);
  });

  it.each(['no_route', 'fault_injected', 'payload_too_large', 'bad_request', 'headers_too_large'] as const)(
    'never falls back on %s, whatever `on` lists',
    (reason) => {
      expect(callFailure(error(reason))).toBeUndefined();
      expect(triggersFallback(error(reason), everyTrigger)).toBe(false);
    },
  );

  it('counts upstream responses from 500 to 599 as 5xx, and nothing else', () => {
    expect(triggersFallback(status(500), ['5xx'])).toBe(true);
    expect(triggersFallback(status(599), ['5xx'])).toBe(true);
    expect(triggersFallback(status(503), ['circuit-open', 'timeout'])).toBe(false);
    for (const code of [200, 204, 304, 404, 429, 499]) expect(triggersFallback(status(code), everyTrigger)).toBe(false);
  });
});
