import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { IdempotencyConfig } from '../../../src/config/types.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { idempotencyLayer } from '../../../src/policies/idempotency/layer.ts';
import { openStore } from '../../../src/stores/open.ts';
import { StoreError, type RecordStore } from '../../../src/stores/store.ts';
import { FakeClock } from '../../support/fake-clock.ts';
import { call, proxyRequest, response, scripted, start } from '../../support/handlers.ts';
import { memorySink } from '../../support/sinks.ts';

const config: IdempotencyConfig = {
  store: 'default',
  header: 'idempotency-key',
  methods: ['POST', 'PATCH'],
  required: false,
  ttlMs: 86_400_000,
  maxResponseBytes: 1024,
  maxRequestBytes: 64,
  onStoreError: 'reject',
  whileInProgress: 'wait',
};

function setup(overrides: Partial<IdempotencyConfig> = {}, records?: RecordStore) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const store = openStore({ name: 'default', type: 'memory', timeoutMs: 50, maxEntries: 100, maxBytes: 1 << 20 }, { clock });
  const layer = idempotencyLayer('charge', { ...config, ...overrides }, { clock, events: { emit: (event) => events.push(event) }, records: records ?? store.records });
  const results = () => events.flatMap((event) => (event.type === 'idempotency' ? [event.result] : []));
  return { clock, layer, results, records: store.records };
}

const keyed = (key: string, body = '{"amount":42}') => proxyRequest({ method: 'POST', path: '/charge', headers: ['host', 'payments', 'Idempotency-Key', key], body: Buffer.from(body) });

/** A store that cannot be reached. */
const unreachable: RecordStore = {
  take: () => Promise.reject(new StoreError('unavailable', 'connection refused', { store: 'default', operation: 'take' })),
  replace: () => Promise.reject(new StoreError('unavailable', 'connection refused', { store: 'default', operation: 'replace' })),
  release: () => Promise.reject(new StoreError('unavailable', 'connection refused', { store: 'default', operation: 'release' })),
  get: () => Promise.reject(new StoreError('unavailable', 'connection refused', { store: 'default', operation: 'get' })),
};

describe('idempotency layer', () => {
  it('refuses a key that is not a valid header value with 400', async () => {
    const { layer, results } = setup();
    const upstream = scripted(201);
    const error = (await call(layer(upstream), keyed('"unterminated')).catch((e: unknown) => e)) as ProxyError;
    expect(error).toMatchObject({ reason: 'bad_request', message: 'the idempotency key is not a valid quoted string' });
    expect(upstream.calls).toHaveLength(0);
    expect(results()).toEqual(['missing']);
  });

  it('reads a streamed body whole to fingerprint it, and refuses one over maxRequestBytes with 413', async () => {
    const { layer } = setup();
    const upstream = scripted(201);
    const small = proxyRequest({ method: 'POST', headers: ['Idempotency-Key', 'k1'], body: Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]) });
    await call(layer(upstream), small);
    expect(upstream.calls[0]!.body).toEqual(Buffer.from('{"a":1}'));

    const large = proxyRequest({ method: 'POST', headers: ['Idempotency-Key', 'k2'], body: Readable.from([Buffer.alloc(100)]) });
    const error = (await call(layer(upstream), large).catch((e: unknown) => e)) as ProxyError;
    expect(error.reason).toBe('payload_too_large');
    expect(upstream.calls).toHaveLength(1);
  });

  it('passes other methods untouched, and counts nothing for them', async () => {
    const { layer, results } = setup({ required: true });
    await call(layer(scripted(200)), proxyRequest({ method: 'GET' }));
    expect(results()).toEqual([]);
  });

  it("releases the key when a fallback answered: that answer is Breakwater's, not the upstream's", async () => {
    const { layer, records } = setup();
    const fallbackAnswer = { ...response(200), fallback: 'static' as const };
    await call(layer(scripted(() => Promise.resolve(fallbackAnswer))), keyed('k3'));
    await expect.poll(() => records.get('6:charge:k3')).toBeUndefined();
  });

  it('stores the answer only once its body has streamed whole to the client', async () => {
    const { layer, records } = setup();
    const made = await call(layer(scripted(() => Promise.resolve(response(201, { 'content-type': 'text/plain' }, 'charged')))), keyed('k4'));
    expect((await records.get('6:charge:k4'))?.meta).toMatchObject({ state: 'in-progress' });
    await made.body.pipeTo(memorySink().sink);
    await expect.poll(async () => (await records.get('6:charge:k4'))?.meta).toMatchObject({ state: 'completed', status: 201, headers: { 'content-type': 'text/plain' } });
  });

  it('in wait mode, answers 409 once its own deadline comes before the first finishes', async () => {
    const { clock, layer, results } = setup();
    const first = start(layer(() => new Promise(() => undefined)), keyed('k5'));
    await clock.advanceAsync(1);
    const repeat = start(layer(scripted(201)), { ...keyed('k5'), deadlineAt: 1_500 });
    await clock.advanceAsync(600, 10);
    expect(repeat.error?.reason).toBe('idempotency_in_progress');
    expect(first.settled).toBe(false);
    expect(results()).toEqual(['first', 'conflict']);
  });

  it('in wait mode, becomes the first request when the first one released its key', async () => {
    const { clock, layer, results } = setup();
    let fail: (error: ProxyError) => void = () => undefined;
    const first = start(layer(() => new Promise((_resolve, reject) => (fail = reject))), keyed('k6'));
    await clock.advanceAsync(1);
    const upstream = scripted(201);
    const repeat = start(layer(upstream), keyed('k6'));
    await clock.advanceAsync(20, 5);
    fail(new ProxyError('upstream_unavailable', { attemptFailure: 'reset' }));
    await first.done;
    await clock.advanceAsync(400, 10);
    await repeat.done;
    expect(repeat.response?.status).toBe(201);
    expect(upstream.calls).toHaveLength(1);
    expect(results()).toEqual(['first', 'first']);
  });

  it('refuses with 503 or forwards when the store fails, as onStoreError says', async () => {
    const refusing = setup({}, unreachable);
    const error = (await call(refusing.layer(scripted(201)), keyed('k7')).catch((e: unknown) => e)) as ProxyError;
    expect(error).toMatchObject({ reason: 'idempotency_store_unavailable', message: 'the idempotency store could not be reached: connection refused' });

    const forwarding = setup({ onStoreError: 'forward' }, unreachable);
    const upstream = scripted(201);
    expect((await call(forwarding.layer(upstream), keyed('k8'))).status).toBe(201);
    expect(upstream.calls).toHaveLength(1);
    expect(forwarding.results()).toEqual(['store_error']);
  });

  it("treats a record it did not write as the store's failure", async () => {
    const { layer, records, results } = setup();
    await records.take('6:charge:k9', { meta: { something: 'else' } }, 60_000);
    const error = (await call(layer(scripted(201)), keyed('k9')).catch((e: unknown) => e)) as ProxyError;
    expect(error.reason).toBe('idempotency_store_unavailable');
    expect(results()).toEqual(['store_error']);
  });
});
