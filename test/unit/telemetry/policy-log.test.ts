import { describe, expect, it } from 'vitest';
import { fanOut, logDeadLetterDrops, logPolicyEvents } from '../../../src/telemetry/policy-log.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { FakeClock } from '../../support/fake-clock.ts';
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

describe('the log of dropped dead letters', () => {
  const drop = (route: string, cause: 'full' | 'store_error' | 'too_large', detail = 'store "local" did not answer'): PolicyEvent => ({ type: 'dead-letter-dropped', route, cause, detail });

  it('logs the first drop at once and the rest of the interval as one line, per route and cause', () => {
    const sink = logSink();
    const clock = new FakeClock();
    const events = logDeadLetterDrops(sink.logger, clock, 60_000);

    // An outage: the store is down, and every failed request is dropped.
    for (let i = 0; i < 500; i++) events.emit(drop('notify', 'store_error', `failure ${i}`));
    events.emit(drop('charge', 'full'));

    expect(sink.lines.map((line) => [line.level, line.msg, line.route, line.cause, line.dropped, line.detail])).toEqual([
      [40, 'dead letters dropped', 'notify', 'store_error', 1, 'failure 0'],
      [40, 'dead letters dropped', 'charge', 'full', 1, 'store "local" did not answer'],
    ]);

    // The interval ends: one line for the 499 drops that followed, with the last reason.
    clock.advance(60_000);
    expect(sink.lines.slice(2).map((line) => [line.route, line.dropped, line.detail, line.intervalSeconds])).toEqual([['notify', 499, 'failure 499', 60]]);

    // A quiet interval closes the window: the next drop is logged at once again.
    clock.advance(60_000);
    expect(clock.pending).toBe(0);
    events.emit(drop('notify', 'store_error', 'back again'));
    expect(sink.lines.at(-1)).toMatchObject({ route: 'notify', dropped: 1, detail: 'back again' });
    expect(sink.lines).toHaveLength(4);
  });

  it('ignores every other event', () => {
    const sink = logSink();
    logDeadLetterDrops(sink.logger, new FakeClock()).emit({ type: 'dead-letter', route: 'notify', reason: 'timeout' });
    expect(sink.lines).toEqual([]);
  });
});
