// Idempotency keys end to end: a real upstream that counts what reaches it, Breakwater in front
// of it on loopback, and the rules of a keyed request checked by what the caller gets back and
// how many times the upstream was hit.
import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startUpstream, type UpstreamServer } from '../../support/upstream-server.ts';

let upstream: UpstreamServer;
let proxy: RunningBreakwater;
let hits = 0;
/** Requests the upstream holds unanswered, by path. */
const held = new Map<string, ServerResponse>();

beforeAll(async () => {
  upstream = await startUpstream((req, res, body) => {
    hits += 1;
    const url = req.url ?? '/';
    if (url.startsWith('/hold')) {
      held.set(url, res);
      return;
    }
    if (url.startsWith('/fail')) {
      res.writeHead(503).end('try later');
      return;
    }
    if (url.startsWith('/slow')) return; // never answers: the route timeout ends it
    const size = Number(new URL(url, 'http://x').searchParams.get('size') ?? '0');
    const payload = size > 0 ? 'x'.repeat(size) : JSON.stringify({ charge: hits, received: body.toString() });
    res.writeHead(201, { 'content-type': 'application/json', 'x-charge-id': `ch_${hits}` }).end(payload);
  });
  proxy = await startBreakwater(`${ephemeralAddresses}
stores:
  default: {type: memory}
  down: {type: redis, url: "redis://127.0.0.1:1", timeout: 50ms}
upstreams:
  payments: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: wait, match: {host: wait}, upstream: payments, timeout: 5s, idempotency: {whileInProgress: wait}}
  - {name: required, match: {host: required}, upstream: payments, idempotency: {required: true}}
  - {name: small, match: {host: small}, upstream: payments, idempotency: {maxResponseBytes: 100}}
  - {name: strict-store, match: {host: strict-store}, upstream: payments, idempotency: {store: down}}
  - {name: lenient-store, match: {host: lenient-store}, upstream: payments, idempotency: {store: down, onStoreError: forward}}
  - {name: charge, match: {host: payments}, upstream: payments, timeout: 1s, idempotency: {}}
`);
});

afterAll(async () => {
  await proxy.stop();
  await upstream.close();
});

beforeEach(() => {
  hits = 0;
  held.clear();
});

let keys = 0;
const newKey = (): string => `key-${process.pid}-${++keys}`;

async function post(path: string, key: string | undefined, body = '{"amount":42}', host = 'payments', method = 'POST') {
  const headers: Record<string, string> = { host, 'content-type': 'application/json' };
  if (key !== undefined) headers['idempotency-key'] = key;
  const response = await request(`${proxy.url()}${path}`, { method: method as 'POST', headers, body: method === 'GET' ? undefined : body });
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
}

async function metric(series: string): Promise<number> {
  const text = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('idempotency keys', () => {
  it('replays the stored response to a repeat, marked as a replay, and the upstream is hit once', async () => {
    const key = newKey();
    const first = await post('/charge', key);
    const repeat = await post('/charge', key);

    expect(first.status).toBe(201);
    expect(repeat).toMatchObject({ status: 201, text: first.text });
    expect(repeat.headers['x-charge-id']).toBe(first.headers['x-charge-id']);
    expect(repeat.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(repeat.headers['x-breakwater-attempts']).toBe('0');
    expect(hits).toBe(1);
    // The key always reaches the upstream, so it can de-duplicate too.
    expect(upstream.requests.at(-1)!.headers['idempotency-key']).toBe(key);
  });

  it('takes the quoted and the bare form of a key as the same key', async () => {
    const key = newKey();
    await post('/charge', `"${key}"`);
    const repeat = await post('/charge', key);
    expect(repeat.headers['idempotent-replayed']).toBe('true');
    expect(hits).toBe(1);
  });

  it('refuses a key reused for a different request with 422, without reaching the upstream', async () => {
    const key = newKey();
    await post('/charge', key, '{"amount":42}');
    const other = await post('/charge', key, '{"amount":43}');
    const otherPath = await post('/charge?currency=USD', key, '{"amount":42}');
    expect(other.status).toBe(422);
    expect(other.headers['x-breakwater-reason']).toBe('idempotency_key_reused');
    expect(otherPath.status).toBe(422);
    expect(hits).toBe(1);
  });

  it('refuses a repeat with 409 while the first is in progress', async () => {
    const key = newKey();
    const first = post('/hold/1', key);
    await until(() => held.has('/hold/1'));
    const repeat = await post('/hold/1', key);
    expect(repeat.status).toBe(409);
    expect(repeat.headers['x-breakwater-reason']).toBe('idempotency_in_progress');
    held.get('/hold/1')!.writeHead(201).end('done');
    expect((await first).status).toBe(201);
    expect(hits).toBe(1);
  });

  it('in wait mode, holds a repeat until the first finishes and then replays its answer', async () => {
    const key = newKey();
    const first = post('/hold/2', key, '{"amount":42}', 'wait');
    await until(() => held.has('/hold/2'));
    const repeat = post('/hold/2', key, '{"amount":42}', 'wait');
    held.get('/hold/2')!.writeHead(201, { 'content-type': 'text/plain' }).end('charged once');
    expect((await first).text).toBe('charged once');
    const replayed = await repeat;
    expect(replayed).toMatchObject({ status: 201, text: 'charged once' });
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(hits).toBe(1);
  });

  it('requires a key where the route says so, and lets other methods pass untouched', async () => {
    const missing = await post('/charge', undefined, '{}', 'required');
    expect(missing.status).toBe(400);
    expect(missing.headers['x-breakwater-reason']).toBe('idempotency_key_missing');
    const read = await post('/charge', undefined, '', 'required', 'GET');
    expect(read.status).toBe(201);
    expect(hits).toBe(1);
  });

  it('releases the key after a 5xx, so the caller may retry with it', async () => {
    const key = newKey();
    expect((await post('/fail', key)).status).toBe(503);
    expect((await post('/fail', key)).status).toBe(503);
    expect(hits).toBe(2);
  });

  it("releases the key after a reply of Breakwater's own", async () => {
    const key = newKey();
    const timedOut = await post('/slow', key);
    expect(timedOut.headers['x-breakwater-reason']).toBe('timeout');
    await post('/slow', key);
    expect(hits).toBe(2);
  });

  it('releases the key when the caller goes away before the answer', async () => {
    const key = newKey();
    const controller = new AbortController();
    const gone = request(`${proxy.url()}/hold/3`, {
      method: 'POST',
      headers: { host: 'payments', 'idempotency-key': key },
      body: '{}',
      signal: controller.signal,
    }).catch(() => undefined);
    await until(() => held.has('/hold/3'));
    controller.abort();
    await gone;
    // Once Breakwater has seen the caller go, the key is free again: the same request reaches
    // the upstream a second time instead of meeting a 409.
    let retried: Awaited<ReturnType<typeof post>> | undefined;
    for (let tries = 0; hits < 2 && tries < 100; tries++) {
      retried = await Promise.race([post('/hold/3', key, '{}'), until(() => hits === 2).then(() => undefined)]);
      if (retried !== undefined) expect(retried.status).toBe(409);
    }
    expect(hits).toBe(2);
    held.get('/hold/3')!.writeHead(201).end('charged');
  });

  it('stores no response larger than maxResponseBytes: the key is released', async () => {
    const key = newKey();
    const big = await post('/charge?size=5000', key, '{}', 'small');
    expect(big.text).toHaveLength(5000);
    const again = await post('/charge?size=5000', key, '{}', 'small');
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect(hits).toBe(2);
  });

  it('refuses keyed requests with 503 when the store cannot be reached, or forwards them, as the route says', async () => {
    const strict = await post('/charge', newKey(), '{}', 'strict-store');
    expect(strict.status).toBe(503);
    expect(strict.headers['x-breakwater-reason']).toBe('idempotency_store_unavailable');
    expect(hits).toBe(0);
    const lenient = await post('/charge', newKey(), '{}', 'lenient-store');
    expect(lenient.status).toBe(201);
    expect(hits).toBe(1);
    expect(await metric('breakwater_idempotency_requests_total{route="strict-store",result="store_error"}')).toBe(1);
    expect(await metric('breakwater_store_errors_total{store="down",operation="take"}')).toBeGreaterThanOrEqual(2);
  });

  it('counts each result', async () => {
    const key = newKey();
    await post('/charge', key);
    await post('/charge', key);
    await post('/charge', key, '{"amount":1}');
    await post('/charge', undefined);
    expect(await metric('breakwater_idempotency_requests_total{route="charge",result="replayed"}')).toBeGreaterThanOrEqual(1);
    expect(await metric('breakwater_idempotency_requests_total{route="charge",result="mismatch"}')).toBeGreaterThanOrEqual(1);
    expect(await metric('breakwater_idempotency_requests_total{route="charge",result="bypassed"}')).toBeGreaterThanOrEqual(1);
    expect(await metric('breakwater_idempotency_requests_total{route="charge",result="first"}')).toBeGreaterThanOrEqual(1);
  });
});
