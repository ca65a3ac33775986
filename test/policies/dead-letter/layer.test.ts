// The dead-letter layer against stub handlers and a real memory store on a fake clock: what it
// keeps, when it writes, and that the caller's answer is the one it would get without it.

import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { DeadLetterConfig } from '../../../src/config/types.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import type { Handler } from '../../../src/exchange/handler.ts';
import type { ProxyRequest } from '../../../src/exchange/request.ts';
import { DEAD_LETTER_STREAM } from '../../../src/policies/dead-letter/capture.ts';
import { deadLetterLayer } from '../../../src/policies/dead-letter/layer.ts';
import { openStore } from '../../../src/stores/open.ts';
import type { LogStore } from '../../../src/stores/store.ts';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.ts';
import { abortRequest, call, hanging, proxyRequest, response, scripted, start } from '../../support/handlers.ts';
import { memorySink } from '../../support/sinks.ts';

const config: DeadLetterConfig = {
  store: 'default',
  on: ['timeout', 'upstream-unavailable', 'circuit-open', 'bulkhead-full', '5xx'],
  maxBodyBytes: 64,
  retentionMs: 7 * 86_400_000,
  maxEntries: 100,
  keepHeaders: [],
};

function setup(overrides: Partial<DeadLetterConfig> = {}, log?: LogStore) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const store = openStore({ name: 'default', type: 'memory', timeoutMs: 50, maxEntries: 1000, maxBytes: 1 << 20 }, { clock });
  const layer = deadLetterLayer('notify', { ...config, ...overrides }, { clock, events: { emit: (event) => events.push(event) }, log: log ?? store.log });
  const entries = async () => (await store.log.list(DEAD_LETTER_STREAM, { limit: 100, order: 'oldest' })).entries;
  const full = async (id: string) => store.log.get(DEAD_LETTER_STREAM, id);
  /** Lets the write that follows the reply happen: the next turn, and a body's last events. */
  const afterReply = async (): Promise<void> => {
    await flushMicrotasks();
    clock.advance(0);
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    await flushMicrotasks();
  };
  const seen = () => events.map((event) => ('cause' in event ? `${event.type}:${event.cause}` : 'reason' in event ? `${event.type}:${event.reason}` : event.type));
  return { clock, layer, events, seen, entries, full, afterReply, store };
}

const post = (overrides: Partial<ProxyRequest> = {}) =>
  proxyRequest({ method: 'POST', path: '/send?to=a', headers: ['host', 'notify', 'content-type', 'application/json', 'authorization', 'Bearer x', 'x-request-id', 'req-1'], requestId: 'req-1', ...overrides });

/** A terminal handler that reads the request body to its end, then answers with `then`. */
function reading(then: Handler): Handler & { bodies: Buffer[] } {
  const bodies: Buffer[] = [];
  const handler: Handler = async (request, scope) => {
    const chunks: Buffer[] = [];
    const body = request.body;
    if (body !== null && !Buffer.isBuffer(body)) for await (const chunk of body) chunks.push(chunk as Buffer);
    bodies.push(Buffer.isBuffer(body) ? body : Buffer.concat(chunks));
    return then(request, scope);
  };
  return Object.assign(handler, { bodies });
}

describe('dead-letter layer', () => {
  it("keeps a request that failed with Breakwater's own reply, after that reply, and passes the failure on untouched", async () => {
    const { layer, entries, afterReply, seen } = setup();
    const failure = new ProxyError('upstream_unavailable', { message: 'could not connect to http://n:80: connection refused', attemptFailure: 'connect-failure' });
    const request = post({ body: Buffer.from('{"to":"a"}') });

    const error = await call(layer(scripted(failure)), request).catch((caught: unknown) => caught);

    expect(error).toBe(failure);
    // The reply goes out first: nothing is written until the next turn.
    expect(await entries()).toEqual([]);
    await afterReply();
    const [entry] = await entries();
    expect(entry).toMatchObject({
      partition: 'notify',
      tags: { reason: 'upstream_unavailable' },
      meta: {
        route: 'test-route',
        upstream: 'test-upstream',
        method: 'POST',
        url: '/send?to=a',
        headers: ['host', 'notify', 'content-type', 'application/json', 'x-request-id', 'req-1'],
        reason: 'upstream_unavailable',
        status: 503,
        attempts: 1,
        requestId: 'req-1',
        bodyBytes: 10,
        truncated: false,
      },
    });
    expect(seen()).toEqual(['dead-letter:upstream_unavailable']);
  });

  it("keeps an upstream's 5xx once the response has streamed to the caller", async () => {
    const { layer, entries, full, afterReply } = setup();
    const upstream = scripted(503);

    const answer = await call(layer(upstream), post({ body: Buffer.from('payload') }));

    expect(answer.status).toBe(503);
    await afterReply();
    expect(await entries()).toEqual([]);
    const sink = memorySink();
    await answer.body.pipeTo(sink.sink);
    await flushMicrotasks();
    const [entry] = await entries();
    expect(entry).toMatchObject({ tags: { reason: '503' }, meta: { status: 503, reason: '503' } });
    expect((await full(entry!.id))?.body).toEqual(Buffer.from('payload'));
  });

  it('passes answers it does not keep through as they are: successes, 4xx, outcomes not in `on`, fallbacks', async () => {
    const { layer, entries, afterReply, events } = setup({ on: ['timeout'] });
    const made = response(200);
    const fallback = { ...response(503), fallback: 'static' as const };

    expect(await call(layer(() => Promise.resolve(made)), post())).toBe(made);
    expect((await call(layer(scripted(404)), post())).status).toBe(404);
    expect((await call(layer(scripted(503)), post())).status).toBe(503);
    expect(await call(layer(() => Promise.resolve(fallback)), post())).toBe(fallback);
    await expect(call(layer(scripted('connect-failure')), post())).rejects.toMatchObject({ reason: 'upstream_unavailable' });
    await afterReply();

    expect(await entries()).toEqual([]);
    expect(events).toEqual([]);
  });

  it('keeps a request its deadline ended, not one whose client left', async () => {
    const { layer, entries, afterReply } = setup();

    const timedOut = post();
    const first = start(layer(hanging()), timedOut);
    abortRequest(timedOut, new ProxyError('timeout', { attemptFailure: 'timeout' }));
    await first.done;
    const left = post();
    const second = start(layer(hanging()), left);
    abortRequest(left, new ProxyError('upstream_unavailable', { message: 'the client closed the connection' }));
    await second.done;
    await afterReply();

    expect((await entries()).map((entry) => entry.meta.reason)).toEqual(['timeout']);
  });

  it('copies a streaming body while the upstream reads it, and sends the upstream every byte', async () => {
    const { layer, entries, full, afterReply } = setup();
    const upstream = reading(scripted(502));

    const answer = await call(layer(upstream), post({ body: Readable.from([Buffer.from('{"to":'), Buffer.from('"a"}')]) }));
    await answer.body.pipeTo(memorySink().sink);
    await afterReply();

    expect(upstream.bodies).toEqual([Buffer.from('{"to":"a"}')]);
    const [entry] = await entries();
    expect((await full(entry!.id))?.body).toEqual(Buffer.from('{"to":"a"}'));
  });

  it('reads the body of a request refused before any attempt, so the dead letter has it', async () => {
    const { layer, entries, full, afterReply } = setup();
    const body = new PassThrough();
    body.end('{"to":"b"}');

    await call(layer(scripted(new ProxyError('circuit_open'))), post({ body })).catch(() => undefined);
    await afterReply();

    const [entry] = await entries();
    expect(entry?.meta).toMatchObject({ reason: 'circuit_open', bodyBytes: 10, truncated: false });
    expect((await full(entry!.id))?.body).toEqual(Buffer.from('{"to":"b"}'));
  });

  it('keeps a request whose body is larger than maxBodyBytes without it, marked truncated', async () => {
    const { layer, entries, full, afterReply } = setup({ maxBodyBytes: 8 });
    const upstream = reading(scripted(503));

    const answer = await call(layer(upstream), post({ body: Readable.from([Buffer.alloc(6, 1), Buffer.alloc(6, 2)]) }));
    await answer.body.pipeTo(memorySink().sink);
    await afterReply();

    // The upstream got the whole body: only the copy stopped.
    expect(upstream.bodies[0]).toHaveLength(12);
    const [entry] = await entries();
    expect(entry?.meta).toMatchObject({ bodyBytes: 12, truncated: true });
    expect((await full(entry!.id))?.body).toBeUndefined();
  });

  it('takes its size from Content-Length when the body is declared larger than maxBodyBytes', async () => {
    const { layer, entries, afterReply } = setup({ maxBodyBytes: 8 });
    const body = new PassThrough();
    const request = post({ headers: ['host', 'notify', 'content-length', String(1 << 30)], body });

    await call(layer(scripted(new ProxyError('bulkhead_full'))), request).catch(() => undefined);
    await afterReply();

    expect((await entries())[0]?.meta).toMatchObject({ bodyBytes: 1 << 30, truncated: true });
    body.destroy();
  });

  it('writes the dead letter of a client that stalls its upload without the body, 30 s on', async () => {
    const { clock, layer, entries, afterReply } = setup();
    const body = new PassThrough();
    body.write('the first half');

    await call(layer(scripted(new ProxyError('circuit_open'))), post({ body })).catch(() => undefined);
    await afterReply();
    expect(await entries()).toEqual([]);
    clock.advance(30_000);
    await afterReply();

    expect((await entries())[0]?.meta).toMatchObject({ reason: 'circuit_open', bodyBytes: null, truncated: true });
    body.destroy();
  });

  it('keeps the credentials keepHeaders lists', async () => {
    const { layer, entries, afterReply } = setup({ keepHeaders: ['authorization'] });

    await call(layer(scripted('reset')), post()).catch(() => undefined);
    await afterReply();

    expect((await entries())[0]?.meta.headers).toContain('Bearer x');
  });

  it('drops what is past maxEntries for the route, and says so', async () => {
    const { layer, entries, afterReply, seen } = setup({ maxEntries: 1 });

    for (let i = 0; i < 3; i++) await call(layer(scripted('connect-failure')), post()).catch(() => undefined);
    await afterReply();

    expect(await entries()).toHaveLength(1);
    expect(seen()).toEqual(['dead-letter:upstream_unavailable', 'dead-letter-dropped:full', 'dead-letter-dropped:full']);
  });

  it('leaves the caller untouched when the store is closed, and counts the loss', async () => {
    const { layer, afterReply, seen, store } = setup();
    await store.close();
    const failure = new ProxyError('timeout', { attemptFailure: 'timeout' });

    await expect(call(layer(scripted(failure)), post())).rejects.toBe(failure);
    await afterReply();

    expect(seen()).toEqual(['dead-letter-dropped:store_error']);
  });

  it('counts a dead letter the store refuses for its size as too_large', async () => {
    const clock = new FakeClock();
    const tiny = openStore({ name: 'tiny', type: 'memory', timeoutMs: 50, maxEntries: 10, maxBytes: 100 }, { clock });
    const { layer, afterReply, seen } = setup({ maxBodyBytes: 1000 }, tiny.log);

    await call(layer(scripted('reset')), post({ body: Buffer.alloc(500) })).catch(() => undefined);
    await afterReply();

    expect(seen()).toEqual(['dead-letter-dropped:too_large']);
  });

  it('drops dead letters while too many writes wait on a store that does not answer', async () => {
    const never: LogStore = {
      append: () => new Promise(() => undefined),
      list: () => new Promise(() => undefined),
      get: () => new Promise(() => undefined),
      update: () => new Promise(() => undefined),
      remove: () => new Promise(() => undefined),
      stats: () => new Promise(() => undefined),
      trim: () => new Promise(() => undefined),
    };
    const { layer, afterReply, events } = setup({}, never);

    for (let i = 0; i < 1001; i++) await call(layer(scripted('reset')), post()).catch(() => undefined);
    await afterReply();

    expect(events).toEqual([{ type: 'dead-letter-dropped', route: 'notify', cause: 'store_error', detail: 'the store has not kept up: 1000 dead letters are still being written' }]);
  });

  it('does not keep a replay of a dead letter again', async () => {
    const { layer, entries, afterReply } = setup();

    await call(layer(scripted('reset')), post({ replayOf: '01ARZ3NDEKTSV4RRFFQ69G5FAV' })).catch(() => undefined);
    await afterReply();

    expect(await entries()).toEqual([]);
  });
});
