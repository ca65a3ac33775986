import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { rawRequest } from '../support/raw-http.ts';
import { echo, startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

describe('proxying through the outbound listener', () => {
  let payments: UpstreamServer;
  let orders: UpstreamServer;
  let slow: UpstreamServer;
  let proxy: RunningBreakwater;

  beforeAll(async () => {
    payments = await startUpstream();
    orders = await startUpstream();
    slow = await startUpstream((_req, res) => {
      // Never answers within the route timeout; the test's proxy gives up first.
      setTimeout(() => res.end('late'), 5000).unref();
    });
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  payments: {endpoints: ["${payments.origin}"]}
  orders: {endpoints: ["${orders.origin}"]}
  slow: {endpoints: ["${slow.origin}"]}
  nowhere: {endpoints: ["http://127.0.0.1:1"], connectTimeout: 200ms}
routes:
  - {name: charge, match: {host: payments, pathPrefix: /charge, methods: [POST]}, upstream: payments}
  - {name: payments-read, match: {host: payments}, upstream: payments}
  - {name: orders, match: {host: "*.orders.svc"}, upstream: orders}
  - {name: slow, match: {host: slow}, upstream: slow, timeout: 300ms}
  - {name: dead, match: {host: dead}, upstream: nowhere}
`);
  });

  afterAll(async () => {
    await proxy.stop();
    await Promise.all([payments.close(), orders.close(), slow.close()]);
  });

  it('routes an origin-form request by its Host header and marks the attempt', async () => {
    const before = payments.requests.length;
    const response = await request(`${proxy.url()}/account/7?x=1`, { headers: { host: 'payments' } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-breakwater-attempts']).toBe('1');
    expect(await response.body.json()).toEqual({ method: 'GET', url: '/account/7?x=1', bodyBytes: 0 });
    const seen = payments.requests[before]!;
    expect(seen.headers.host).toBe('payments');
    expect(seen.headers['x-breakwater-attempt']).toBe('1');
  });

  it('routes an absolute-form request (HTTP_PROXY style) the same way', async () => {
    const before = orders.requests.length;
    const exchange = await rawRequest(
      Number(new URL(proxy.url()).port),
      'GET http://api.orders.svc/list HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n',
    );
    expect(exchange.text).toMatch(/^HTTP\/1\.1 200/);
    expect(orders.requests[before]!.url).toBe('/list');
    expect(orders.requests[before]!.headers.host).toBe('api.orders.svc');
  });

  it('streams a POST body to the route that matches its method and path', async () => {
    const before = payments.requests.length;
    const body = 'x'.repeat(100_000);
    const response = await request(`${proxy.url()}/charge/42`, { method: 'POST', headers: { host: 'payments' }, body });
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    expect(payments.requests[before]!.body.toString()).toBe(body);
  });

  it('sets forwarding headers, keeps x-request-id and trace context, drops hop-by-hop headers', async () => {
    const before = payments.requests.length;
    const exchange = await rawRequest(
      Number(new URL(proxy.url()).port),
      [
        'GET /h HTTP/1.1',
        'Host: payments',
        'x-request-id: req-123',
        'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        'tracestate: vendor=1',
        'x-forwarded-for: 10.0.0.1',
        'x-forwarded-proto: https',
        'Connection: close, x-secret-hop',
        'x-secret-hop: drop me',
        'proxy-authorization: Basic abc',
        'Keep-Alive: timeout=5',
        'TE: trailers',
        '',
        '',
      ].join('\r\n'),
    );
    expect(exchange.text).toMatch(/^HTTP\/1\.1 200/);
    const seen = payments.requests[before]!.headers;
    expect(seen['x-request-id']).toBe('req-123');
    expect(seen.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(seen.tracestate).toBe('vendor=1');
    expect(seen['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen.te).toBe('trailers');
    expect(seen['x-secret-hop']).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(seen['keep-alive']).toBeUndefined();
  });

  it('generates an x-request-id when the caller sent none', async () => {
    const before = payments.requests.length;
    const response = await request(`${proxy.url()}/id`, { headers: { host: 'payments' } });
    await response.body.dump();
    expect(payments.requests[before]!.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('removes the upstream response hop-by-hop headers', async () => {
    payments.respond((_req, res) => {
      res.writeHead(200, { connection: 'x-upstream-hop', 'x-upstream-hop': 'secret', 'x-kept': 'yes', 'content-length': '2' });
      res.end('ok');
    });
    try {
      const response = await request(`${proxy.url()}/`, { headers: { host: 'payments' } });
      expect(await response.body.text()).toBe('ok');
      expect(response.headers['x-kept']).toBe('yes');
      expect(response.headers['x-upstream-hop']).toBeUndefined();
    } finally {
      payments.respond(echo);
    }
  });

  it('answers 404 no_route for an unknown host and never dials it', async () => {
    const target = createServer((_req, res) => res.end('should never be reached'));
    let dialled = 0;
    target.on('connection', () => (dialled += 1));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const port = (target.address() as AddressInfo).port;
    try {
      const exchange = await rawRequest(
        Number(new URL(proxy.url()).port),
        `GET http://127.0.0.1:${port}/steal HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
      );
      expect(exchange.text).toMatch(/^HTTP\/1\.1 404/);
      expect(exchange.text).toMatch(/x-breakwater-reason: no_route/i);
      const body = JSON.parse(exchange.text.slice(exchange.text.indexOf('\r\n\r\n') + 4)) as { error: Record<string, unknown> };
      expect(body.error.reason).toBe('no_route');
      expect(body.error.requestId).toEqual(expect.any(String));
      expect(dialled).toBe(0);
    } finally {
      await new Promise((resolve) => target.close(resolve));
    }
  });

  it('answers 504 timeout when the route timeout expires', async () => {
    const response = await request(`${proxy.url()}/`, { headers: { host: 'slow' } });
    expect(response.statusCode).toBe(504);
    expect(response.headers['x-breakwater-reason']).toBe('timeout');
    const body = (await response.body.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ reason: 'timeout', route: 'slow', upstream: 'slow' });
  });

  it('answers 503 upstream_unavailable naming the endpoint and the cause when no connection can be made', async () => {
    const response = await request(`${proxy.url()}/`, { headers: { host: 'dead', 'x-request-id': 'refused-1' } });
    expect(response.statusCode).toBe(503);
    expect(response.headers['x-breakwater-reason']).toBe('upstream_unavailable');
    const body = (await response.body.json()) as { error: { message: string } };
    expect(body.error.message).toBe(`could not connect to http://127.0.0.1:1: connection refused`);
    // The access log says the same, so an operator need not guess.
    await expect.poll(() => proxy.log.accessLines().find((line) => line.requestId === 'refused-1')).toMatchObject({
      reason: 'upstream_unavailable',
      detail: `could not connect to http://127.0.0.1:1: connection refused`,
    });
  });

  it('names a reset before the response as one, with the endpoint', async () => {
    payments.respond((req) => req.socket.destroy());
    try {
      const response = await request(`${proxy.url()}/`, { headers: { host: 'payments' } });
      expect(response.statusCode).toBe(503);
      const body = (await response.body.json()) as { error: { message: string } };
      expect(body.error.message).toMatch(new RegExp(`^${payments.origin} ended the exchange before a response: `));
    } finally {
      payments.respond(echo);
    }
  });

  it("returns the request's x-request-id on every response, the upstream's and Breakwater's own", async () => {
    const proxied = await request(`${proxy.url()}/`, { headers: { host: 'payments', 'x-request-id': 'quote-me' } });
    await proxied.body.dump();
    expect(proxied.headers['x-request-id']).toBe('quote-me');
    const generated = await request(`${proxy.url()}/`, { headers: { host: 'payments' } });
    await generated.body.dump();
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const local = await request(`${proxy.url()}/`, { headers: { host: 'nowhere.example', 'x-request-id': 'quote-me-too' } });
    await local.body.dump();
    expect(local.headers['x-request-id']).toBe('quote-me-too');
  });

  it('passes an upstream error response through unchanged', async () => {
    payments.respond((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('upstream says no');
    });
    try {
      const response = await request(`${proxy.url()}/`, { headers: { host: 'payments' } });
      expect(response.statusCode).toBe(502);
      expect(response.headers['x-breakwater-reason']).toBeUndefined();
      expect(await response.body.text()).toBe('upstream says no');
    } finally {
      payments.respond(echo);
    }
  });

  it('counts requests and upstream attempts by outcome in /metrics', async () => {
    await (await request(`${proxy.url()}/counted`, { headers: { host: 'payments' } })).body.dump();
    await (await request(`${proxy.url()}/`, { headers: { host: 'dead' } })).body.dump();
    const text = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
    const sample = (series: string) => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.split(' ')[1]);
    };
    expect(sample('breakwater_upstream_attempts_total{route="payments-read",upstream="payments",outcome="response",code="200",grpc_code=""}')).toBeGreaterThan(0);
    expect(sample('breakwater_upstream_attempts_total{route="dead",upstream="nowhere",outcome="connect-failure",code="",grpc_code=""}')).toBeGreaterThan(0);
    expect(sample('breakwater_requests_total{listener="outbound",route="dead",upstream="nowhere",code="503",reason="upstream_unavailable",protocol="http1"}')).toBeGreaterThan(0);
    expect(sample('breakwater_requests_total{listener="outbound",route="",upstream="",code="404",reason="no_route",protocol="http1"}')).toBeGreaterThan(0);
  });

  it('writes one access-log line per request', async () => {
    const response = await request(`${proxy.url()}/logged?token=abc`, { headers: { host: 'payments', 'x-request-id': 'log-me' } });
    await response.body.dump();
    await expect.poll(() => proxy.log.accessLines().filter((line) => line.requestId === 'log-me')).toHaveLength(1);
    const line = proxy.log.accessLines().find((entry) => entry.requestId === 'log-me')!;
    expect(line).toMatchObject({ listener: 'outbound', route: 'payments-read', upstream: 'payments', method: 'GET', status: 200, attempts: 1 });
    expect(line.reason).toBeUndefined();
    expect(typeof line.durationMs).toBe('number');
  });
});

describe('load balancing', () => {
  it('spreads requests over every endpoint', async () => {
    const a = await startUpstream();
    const b = await startUpstream();
    const proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  pair: {endpoints: ["${a.origin}", "${b.origin}"], loadBalancing: round-robin}
routes:
  - {name: pair, match: {pathPrefix: /}, upstream: pair}
`);
    try {
      for (let i = 0; i < 10; i++) {
        const response = await request(`${proxy.url()}/`);
        await response.body.dump();
      }
      expect(a.requests.length).toBe(5);
      expect(b.requests.length).toBe(5);
    } finally {
      await proxy.stop();
      await Promise.all([a.close(), b.close()]);
    }
  });
});
