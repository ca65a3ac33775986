// Replaying dead letters through a stub of the route's handler, on a real memory store and a
// fake clock: what the replay sends, what becomes of the entry, and how a bulk replay paces
// itself and stops.

import { describe, expect, it } from 'vitest';
import type { DeadLetterConfig } from '../../../src/config/types.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import type { Handler } from '../../../src/exchange/handler.ts';
import type { BodySink, ProxyRequest, UpstreamResponse } from '../../../src/exchange/request.ts';
import { DEAD_LETTER_STREAM, deadLetterMeta, storedMeta } from '../../../src/policies/dead-letter/capture.ts';
import { replayEntry, replayRoute, type BulkSummary, type ReplayReport, type ReplayTarget } from '../../../src/policies/dead-letter/replayer.ts';
import { openStore } from '../../../src/stores/open.ts';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.ts';
import { hanging, response, scripted } from '../../support/handlers.ts';

const config: DeadLetterConfig = { store: 'default', on: ['timeout', 'upstream-unavailable', 'circuit-open', 'bulkhead-full', '5xx'], maxBodyBytes: 1024, retentionMs: 86_400_000, maxEntries: 1000, keepHeaders: [] };

function setup() {
  const clock = new FakeClock();
  const events: PolicyEvent[] = [];
  const store = openStore({ name: 'default', type: 'memory', timeoutMs: 50, maxEntries: 1000, maxBytes: 1 << 20 }, { clock });
  const deps = { clock, events: { emit: (event: PolicyEvent) => events.push(event) } };
  const target = (handler: Handler): ReplayTarget => ({ route: 'notify', listener: 'outbound', upstream: 'notifier', timeoutMs: 2000, config, log: store.log, handler });
  /** Keeps a dead letter as the layer would; resolves with its id. */
  const keep = async (overrides: { method?: string; body?: string; reason?: string; truncated?: boolean; n?: number } = {}): Promise<string> => {
    const meta = deadLetterMeta(
      { route: 'notify', upstream: 'notifier', listener: 'outbound', method: overrides.method ?? 'POST', path: `/send/${overrides.n ?? 0}`, headers: ['host', 'notify', 'content-type', 'text/plain'], requestId: `req-${overrides.n ?? 0}`, traceId: undefined, attempts: 3 },
      { capture: true, reason: overrides.reason ?? 'timeout', status: 504 },
      overrides.truncated === true ? { size: 5000, truncated: true } : { size: overrides.body?.length ?? 0, truncated: false },
      new Set(),
    );
    const body = overrides.body === undefined || overrides.truncated === true ? {} : { body: Buffer.from(overrides.body) };
    const result = await store.log.append(DEAD_LETTER_STREAM, { partition: 'notify', tags: { reason: meta.reason }, meta: storedMeta(meta), ...body }, 1000);
    if (!result.appended) throw new Error('not appended');
    // One millisecond apart, as captures of an outage are.
    clock.advance(1);
    return result.id;
  };
  const entry = async (id: string) => store.log.get(DEAD_LETTER_STREAM, id);
  const replays = () => events.flatMap((event) => (event.type === 'dead-letter-replay' ? [event.result] : []));
  return { clock, store, deps, target, keep, entry, replays };
}

/** Runs a bulk replay to its end, letting the fake clock move for its pacing; records when each replay started. */
async function runBulk(clock: FakeClock, replays: AsyncGenerator<ReplayReport, BulkSummary>): Promise<{ reports: ReplayReport[]; summary: BulkSummary }> {
  const reports: ReplayReport[] = [];
  let done: BulkSummary | undefined;
  const running = (async () => {
    for (;;) {
      const step = await replays.next();
      if (step.done === true) {
        done = step.value;
        return;
      }
      reports.push(step.value);
    }
  })();
  while (done === undefined) await clock.advanceAsync(50, 50);
  await running;
  return { reports, summary: done };
}

describe('replaying one dead letter', () => {
  it('sends it again through the route, marked with its id and keyed by it, and removes it once delivered', async () => {
    const { deps, target, keep, entry, replays } = setup();
    const id = await keep({ body: 'hello' });
    const upstream = scripted(201);

    const report = await replayEntry(target(upstream), (await entry(id))!, deps);

    expect(report).toEqual({ id, result: 'success', status: 201, attempts: 1 });
    const sent = upstream.calls[0] as ProxyRequest;
    expect(sent).toMatchObject({ method: 'POST', path: '/send/0', route: 'notify', upstream: 'notifier', listener: 'outbound', requestId: 'req-0', replayOf: id, body: Buffer.from('hello') });
    expect(sent.headers).toEqual(['host', 'notify', 'content-type', 'text/plain', 'x-breakwater-replay', id, 'idempotency-key', id]);
    // The response was read to its end, not dropped.
    expect(upstream.responses[0]?.discarded).toBe(false);
    expect(await entry(id)).toBeUndefined();
    expect(replays()).toEqual(['success']);
  });

  it('keeps a dead letter whose replay fails, with the attempt in its history', async () => {
    const { clock, deps, target, keep, entry, replays } = setup();
    const id = await keep({ method: 'GET' });

    const first = await replayEntry(target(scripted(503)), (await entry(id))!, deps);
    const second = await replayEntry(target(scripted(new ProxyError('circuit_open'))), (await entry(id))!, deps);

    expect(first).toEqual({ id, result: 'failure', status: 503, attempts: 1 });
    expect(second).toEqual({ id, result: 'failure', status: 503, reason: 'circuit_open', attempts: 1 });
    expect((await entry(id))?.meta).toMatchObject({
      replayCount: 2,
      replays: [
        { at: clock.wallNow(), result: 'failure', status: 503, attempts: 1 },
        { at: clock.wallNow(), result: 'failure', status: 503, reason: 'circuit_open', attempts: 1 },
      ],
    });
    expect(replays()).toEqual(['failure', 'failure']);
  });

  it('gives a replay the route timeout, and calls one that runs past it failed', async () => {
    const { clock, deps, target, keep, entry } = setup();
    const id = await keep();

    const replaying = replayEntry(target(hanging()), (await entry(id))!, deps);
    await clock.advanceAsync(2000, 100);

    expect(await replaying).toMatchObject({ result: 'failure', status: 504, reason: 'timeout' });
  });

  it('does not send a dead letter whose body was not kept', async () => {
    const { deps, target, keep, entry } = setup();
    const id = await keep({ truncated: true });
    const upstream = scripted(200);

    expect(await replayEntry(target(upstream), (await entry(id))!, deps)).toEqual({ id, result: 'skipped', why: expect.stringMatching(/cannot be sent again/) });
    expect(upstream.calls).toEqual([]);
    expect(await entry(id)).toBeDefined();
  });

  it('reports a store that fails after the replay, the replay itself done', async () => {
    const { deps, target, keep, entry, store } = setup();
    const id = await keep();
    const kept = (await entry(id))!;
    await store.close();

    expect(await replayEntry(target(scripted(200)), kept, deps)).toMatchObject({ id, result: 'success', storeError: expect.stringMatching(/closed/) });
  });
});

describe('a bulk replay', () => {
  it('replays a route\'s dead letters in the order they were kept, paced, and removes the delivered ones', async () => {
    const { clock, deps, target, keep, store } = setup();
    const ids = [];
    for (let n = 0; n < 5; n++) ids.push(await keep({ n, body: `body ${n}` }));
    const started: number[] = [];
    const upstream: Handler = (request, scope) => {
      started.push(clock.now());
      return scripted(200)(request, scope);
    };
    const from = clock.now();

    const { reports, summary } = await runBulk(clock, replayRoute(target(upstream), { ratePerSecond: 4 }, deps, new AbortController().signal));

    expect(reports.map((report) => report.id)).toEqual(ids);
    expect(summary).toEqual({ stopped: 'done', message: 'every matching dead letter was replayed', replayed: 5, succeeded: 5, failed: 0, skipped: 0 });
    // Four a second: one every 250ms from the start.
    expect(started.map((at) => at - from)).toEqual([0, 250, 500, 750, 1000]);
    expect((await store.log.stats(DEAD_LETTER_STREAM))).toEqual([]);
  });

  it('stops by itself when the route\'s breaker refuses a replay, and keeps the rest', async () => {
    const { clock, deps, target, keep, store } = setup();
    for (let n = 0; n < 5; n++) await keep({ n });
    const upstream = scripted(200, 503, new ProxyError('circuit_open'));

    const { reports, summary } = await runBulk(clock, replayRoute(target(upstream), { ratePerSecond: 100 }, deps, new AbortController().signal));

    expect(reports.map((report) => report.result)).toEqual(['success', 'failure', 'failure']);
    expect(summary).toMatchObject({ stopped: 'circuit-open', message: expect.stringMatching(/circuit breaker is open/), replayed: 3, succeeded: 1, failed: 2 });
    expect((await store.log.stats(DEAD_LETTER_STREAM))[0]?.entries).toBe(4);
  });

  it('takes only what its filter and limit say, and skips what cannot be sent', async () => {
    const { clock, deps, target, keep } = setup();
    await keep({ n: 0, reason: '503' });
    const since = clock.wallNow();
    await keep({ n: 1, reason: 'timeout', truncated: true });
    const wanted = [await keep({ n: 2, reason: 'timeout' }), await keep({ n: 3, reason: 'timeout' })];
    await keep({ n: 4, reason: 'timeout' });
    const upstream = scripted(200);

    const { reports, summary } = await runBulk(clock, replayRoute(target(upstream), { reason: 'timeout', since, limit: 2, ratePerSecond: 100 }, deps, new AbortController().signal));

    expect(reports.map((report) => report.result)).toEqual(['skipped', 'success', 'success']);
    expect(reports.slice(1).map((report) => report.id)).toEqual(wanted);
    expect(summary).toMatchObject({ stopped: 'limit', replayed: 2, skipped: 1 });
  });

  it('leaves dead letters kept after it started for another time', async () => {
    const { clock, deps, target, keep } = setup();
    await keep({ n: 0 });
    const replays = replayRoute(target(scripted(200)), { ratePerSecond: 1 }, deps, new AbortController().signal);
    const first = await replays.next();
    await keep({ n: 1 });

    expect(first.value).toMatchObject({ result: 'success' });
    const rest = await runBulk(clock, replays);
    expect(rest.summary).toMatchObject({ stopped: 'done', replayed: 1 });
  });

  it('stops when whoever asked for it goes away', async () => {
    const { clock, deps, target, keep } = setup();
    for (let n = 0; n < 3; n++) await keep({ n });
    const controller = new AbortController();
    const replays = replayRoute(target(scripted(200)), { ratePerSecond: 1 }, deps, controller.signal);
    await replays.next();

    const waiting = replays.next();
    await flushMicrotasks();
    controller.abort();
    await clock.advanceAsync(10);

    expect(await waiting).toMatchObject({ done: true, value: { stopped: 'cancelled', replayed: 1 } });
  });
});

describe('a replayed response', () => {
  it('is read whole, so the exchange finishes as a client\'s would', async () => {
    const { deps, target, keep, entry } = setup();
    const id = await keep();
    const made = response(200, {}, 'done');
    let piped = false;
    const answer: UpstreamResponse = { ...made, body: { pipeTo: (sink: BodySink) => ((piped = true), made.body.pipeTo(sink)), discard: () => made.body.discard() } };

    await replayEntry(target(() => Promise.resolve(answer)), (await entry(id))!, deps);

    expect(piped).toBe(true);
  });
});
