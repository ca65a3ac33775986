import { describe, expect, it } from 'vitest';
import { fanOut, logPolicyEvents } from '../../../src/telemetry/policy-log.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { logSink } from '../../support/log-sink.ts';

describe('policy event log', () => {
  it('logs each breaker transition, as a warning when calls stop going through', () => {
    const sink = logSink();
    const events = logPolicyEvents(sink.logger);
    events.emit({ type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'closed', to: 'open' });
    events.emit({ type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'half-open', to: 'closed' });
    events.emit({ type: 'retry', route: 'r', upstream: 'payments', attempt: 2, delayMs: 10, trigger: 'status' });
    expect(sink.lines.map((line) => [line.level, line.msg, line.from, line.to])).toEqual([
      [40, 'circuit breaker transition', 'closed', 'open'],
      [30, 'circuit breaker transition', 'half-open', 'closed'],
    ]);
  });

  it('fans every event out to each target in order', () => {
    const seen: string[] = [];
    const event: PolicyEvent = { type: 'fault-injected', route: 'r', kind: 'abort' };
    fanOut({ emit: (e) => seen.push(`a:${e.type}`) }, { emit: (e) => seen.push(`b:${e.type}`) }).emit(event);
    expect(seen).toEqual(['a:fault-injected', 'b:fault-injected']);
  });
});
