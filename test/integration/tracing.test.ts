import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { spanKind, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.ts';
import { startUpstream, type ReceivedRequest, type UpstreamServer } from '../support/upstream-server.ts';
import { connectWebSocket, startWebSocketUpstream } from '../support/websocket.ts';
import { WebSocket } from 'ws';

// The OpenTelemetry SDK reads its settings from process.env. This file runs in a process of its
// own, starts from no OTEL_* variable at all, and each test sets the ones it needs.
const outerOtel = Object.entries(process.env).filter(([name]) => name.startsWith('OTEL_'));

function setOtelEnv(vars: Record<string, string>): void {
  for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name];
  Object.assign(process.env, vars);
}

/** Tracing on, exported as OTLP/JSON to `receiver`. */
function exportTo(receiver: OtlpReceiver, extra: Record<string, string> = {}): Record<string, string> {
  return { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.origin, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...extra };
}

const callerTraceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const callerSpanId = '00f067aa0ba902b7';

function traceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** Every value of a header as the upstream received it, whatever the spelling of its name. */
function headerValues(received: ReceivedRequest, name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < received.rawHeaders.length; i += 2) {
    if (received.rawHeaders[i]!.toLowerCase() === name) values.push(received.rawHeaders[i + 1]!);
  }
  return values;
}

/** The one traceparent an upstream received, split into its fields. */
function receivedTraceparent(received: ReceivedRequest): { traceId: string; parentId: string; flags: string } {
  const values = headerValues(received, 'traceparent');
  expect(values).toHaveLength(1);
  const [version, traceId, parentId, flags] = values[0]!.split('-');
  expect(version).toBe('00');
  return { traceId: traceId!, parentId: parentId!, flags: flags! };
}

function serverSpans(spans: ReceivedSpan[]): ReceivedSpan[] {
  return spans.filter((span) => span.kind === spanKind.server);
}

function clientSpans(spans: ReceivedSpan[]): ReceivedSpan[] {
  return spans.filter((span) => span.kind === spanKind.client);
}

/** One route, `items`, from every path to the upstream `catalog` at `origin`, no policies. */
function itemsToCatalog(origin: string): string {
  return `${ephemeralAddresses}
upstreams:
  catalog: {endpoints: ["${origin}"]}
routes:
  - name: items
    match: {pathPrefix: /}
    upstream: catalog
`;
}

describe('OpenTelemetry traces', () => {
  let receiver: OtlpReceiver;
  let upstream: UpstreamServer | undefined;
  let proxy: RunningBreakwater | undefined;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });

  afterEach(async () => {
    await upstream?.close();
    await proxy?.stop();
    upstream = undefined;
    proxy = undefined;
  });

  afterAll(async () => {
    await receiver.close();
    setOtelEnv(Object.fromEntries(outerOtel) as Record<string, string>);
  });

  /** Spans exported since the test began: drain flushes them, so they are all in by now. */
  function spansSince(before: number): ReceivedSpan[] {
    return receiver.spans().slice(before);
  }

  it('exports a server span and one client span per attempt, and sends each attempt upstream as its own span', async () => {
    setOtelEnv(exportTo(receiver));
    const before = receiver.spans().length;
    // Two 503s, then a 200.
    let answered = 0;
    upstream = await startUpstream((_req, res) => {
      answered += 1;
      const status = answered <= 2 ? 503 : 200;
      res.writeHead(status, { 'content-length': '2' }).end('ok');
    });
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: ["${upstream.origin}"]
    circuitBreaker: {minRequests: 100}
routes:
  - name: items
    match: {pathPrefix: /items}
    upstream: catalog
    retry:
      maxAttempts: 3
      retryOn: [503]
      backoff: {type: fixed, base: 1ms, jitter: none}
`);

    // A caller that is itself traced sends a request with a query string.
    const response = await request(`${proxy.url()}/items/7?token=secret`, {
      headers: { traceparent: traceparent(callerTraceId, callerSpanId, true), tracestate: 'vendor=abc', 'x-request-id': 'req-1' },
    });
    await response.body.dump();
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-breakwater-attempts']).toBe('3');
    await proxy.stop();

    const spans = spansSince(before);
    expect(spans).toHaveLength(4);
    const [server] = serverSpans(spans);
    expect(server).toBeDefined();
    expect(server!.resource['service.name']).toBe('breakwater');

    // The server span continues the caller's trace, under the caller's span.
    expect(server!.traceId).toBe(callerTraceId);
    expect(server!.parentSpanId).toBe(callerSpanId);
    expect(server!.name).toBe('GET items');
    expect(server!.statusCode).toBe(0);
    expect(server!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.scheme': 'http',
      'url.path': '/items/7',
      'http.response.status_code': 200,
      'breakwater.listener': 'outbound',
      'breakwater.route': 'items',
      'breakwater.upstream': 'catalog',
      'breakwater.outcome': 'upstream',
      'breakwater.attempts': 3,
    });
    expect(server!.attributes).not.toHaveProperty('breakwater.reason');
    expect(server!.attributes).not.toHaveProperty('error.type');
    // Each backoff wait is an event on the server span.
    expect(server!.events).toEqual([
      { name: 'breakwater.retry.backoff', attributes: { 'breakwater.retry.next_attempt': 2, 'breakwater.retry.backoff_ms': 1, 'breakwater.retry.trigger': 'status' } },
      { name: 'breakwater.retry.backoff', attributes: { 'breakwater.retry.next_attempt': 3, 'breakwater.retry.backoff_ms': 1, 'breakwater.retry.trigger': 'status' } },
    ]);

    // Three client spans, children of the server span, told apart by their resend count.
    const attempts = clientSpans(spans).sort(
      (a, b) => Number(a.attributes['http.request.resend_count'] ?? 0) - Number(b.attributes['http.request.resend_count'] ?? 0),
    );
    expect(attempts).toHaveLength(3);
    expect(attempts.map((span) => span.attributes['http.request.resend_count'] ?? 0)).toEqual([0, 1, 2]);
    // The first attempt is no resend: the semantic conventions leave the attribute out.
    expect(attempts[0]!.attributes).not.toHaveProperty('http.request.resend_count');
    expect(attempts.map((span) => span.attributes['http.response.status_code'])).toEqual([503, 503, 200]);
    expect(attempts.map((span) => span.attributes['error.type'])).toEqual(['503', '503', undefined]);
    expect(attempts.map((span) => span.statusCode)).toEqual([2, 2, 0]);
    for (const attempt of attempts) {
      expect(attempt.traceId).toBe(callerTraceId);
      expect(attempt.parentSpanId).toBe(server!.spanId);
      expect(attempt.name).toBe('GET catalog');
      expect(attempt.attributes).toMatchObject({
        'http.request.method': 'GET',
        'server.address': '127.0.0.1',
        'server.port': upstream.port,
        'url.path': '/items/7',
        'breakwater.route': 'items',
        'breakwater.upstream': 'catalog',
        'breakwater.outcome': 'response',
        'breakwater.breaker_state': 'closed',
      });
      expect(attempt.attributes['breakwater.deadline_remaining_ms']).toBeGreaterThan(0);
    }

    // Each attempt reached the upstream with its own span as parent, once, and the caller's
    // tracestate carried along once.
    expect(upstream.requests).toHaveLength(3);
    for (const received of upstream.requests) {
      const resendCount = Number(received.headers['x-breakwater-attempt']) - 1;
      const { traceId, parentId, flags } = receivedTraceparent(received);
      expect(traceId).toBe(callerTraceId);
      expect(parentId).toBe(attempts[resendCount]!.spanId);
      expect(flags).toBe('01');
      expect(headerValues(received, 'tracestate')).toEqual(['vendor=abc']);
    }

    // The access-log line names the server span.
    const [line] = proxy.log.accessLines();
    expect(line).toMatchObject({ requestId: 'req-1', traceId: callerTraceId, spanId: server!.spanId, attempts: 3, status: 200 });
  });

  it('records a breaker refusal and the fallback that answered on the server span', async () => {
    setOtelEnv(exportTo(receiver));
    const before = receiver.spans().length;
    upstream = await startUpstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: ["${upstream.origin}"]
    circuitBreaker: {minRequests: 100}
routes:
  - name: items
    match: {pathPrefix: /items}
    upstream: catalog
    fallback:
      on: [circuit-open]
      chain:
        - response: {status: 200, body: '[]'}
`);
    // An operator forces the breaker open.
    const forced = await request(`${proxy.adminUrl}/circuits/catalog`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ state: 'forced-open' }),
    });
    await forced.body.dump();
    expect(forced.statusCode).toBe(200);

    const response = await request(`${proxy.url()}/items`);
    expect(await response.body.text()).toBe('[]');
    expect(response.headers['x-breakwater-fallback']).toBe('static');
    await proxy.stop();

    // No attempt was made: the trace is the server span alone.
    const spans = spansSince(before);
    expect(spans).toHaveLength(1);
    const server = spans[0]!;
    expect(server.kind).toBe(spanKind.server);
    expect(server.parentSpanId).toBe('');
    expect(server.attributes).toMatchObject({
      'http.response.status_code': 200,
      'breakwater.outcome': 'fallback',
      'breakwater.fallback': 'static',
      'breakwater.attempts': 0,
    });
    expect(server.events).toEqual([
      { name: 'breakwater.circuit_breaker.rejected', attributes: { 'breakwater.circuit_breaker.name': 'catalog' } },
      { name: 'breakwater.fallback', attributes: { 'breakwater.fallback.kind': 'static', 'breakwater.fallback.result': 'success' } },
    ]);
    expect(upstream.requests).toHaveLength(0);
    expect(proxy.log.accessLines()[0]).toMatchObject({ traceId: server.traceId, spanId: server.spanId, fallback: 'static' });
  });

  it('records the wait of a request queued in a bulkhead on its server span', async () => {
    setOtelEnv(exportTo(receiver));
    const before = receiver.spans().length;
    // The upstream holds every response until the test lets it go.
    const held: ServerResponse[] = [];
    upstream = await startUpstream((_req, res) => {
      held.push(res);
    });
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  reports:
    endpoints: ["${upstream.origin}"]
    bulkhead: {maxConcurrent: 1, maxQueued: 1, queueTimeout: 30s}
routes:
  - name: reports
    match: {pathPrefix: /}
    upstream: reports
`);
    const queuedTraceId = 'a'.repeat(32);
    const first = request(`${proxy.url()}/first`);
    await expect.poll(() => held.length, { timeout: 10_000, interval: 10 }).toBe(1);
    // The second request waits for the first one's slot.
    const second = request(`${proxy.url()}/second`, { headers: { traceparent: traceparent(queuedTraceId, callerSpanId, true) } });
    const telemetryUrl = proxy.telemetryUrl;
    await expect
      .poll(async () => (await (await request(`${telemetryUrl}/metrics`)).body.text()).includes('breakwater_bulkhead_queued{upstream="reports"} 1'), {
        timeout: 10_000,
        interval: 10,
      })
      .toBe(true);
    held[0]!.writeHead(200, { 'content-length': '0' }).end();
    await expect.poll(() => held.length, { timeout: 10_000, interval: 10 }).toBe(2);
    held[1]!.writeHead(200, { 'content-length': '0' }).end();
    for (const response of await Promise.all([first, second])) {
      await response.body.dump();
      expect(response.statusCode).toBe(200);
    }
    await proxy.stop();

    const servers = serverSpans(spansSince(before));
    expect(servers).toHaveLength(2);
    const queued = servers.find((span) => span.traceId === queuedTraceId);
    const other = servers.find((span) => span.traceId !== queuedTraceId);
    expect(queued?.events.map((event) => event.name)).toEqual(['breakwater.bulkhead.queued']);
    expect(queued!.events[0]!.attributes['breakwater.bulkhead.wait_ms']).toBeGreaterThanOrEqual(0);
    expect(other?.events).toEqual([]);
  });

  it("names a WebSocket handshake on its spans, and ends the server span at the upstream's 101", async () => {
    // Spans are exported within 50 ms of their end, so the handshake's shows while its tunnel is open.
    setOtelEnv(exportTo(receiver, { OTEL_BSP_SCHEDULE_DELAY: '50' }));
    const before = receiver.spans().length;
    const chat = await startWebSocketUpstream();
    try {
      proxy = await startBreakwater(itemsToCatalog(chat.origin));
      const socketTraceId = 'b'.repeat(32);
      const client = await connectWebSocket(`${proxy.url().replace('http://', 'ws://')}/live`, {
        traceparent: traceparent(socketTraceId, callerSpanId, true),
      });
      let spans: ReceivedSpan[] = [];
      await expect.poll(() => (spans = spansSince(before).filter((span) => span.traceId === socketTraceId)).length, { timeout: 10_000, interval: 20 }).toBe(2);
      expect(client.readyState).toBe(WebSocket.OPEN);
      const [server] = serverSpans(spans);
      expect(server!.name).toBe('GET items');
      expect(server!.attributes).toMatchObject({
        'http.response.status_code': 101,
        'breakwater.protocol': 'websocket',
        'breakwater.route': 'items',
        'breakwater.outcome': 'upstream',
      });
      const [attempt] = clientSpans(spans);
      expect(attempt!.parentSpanId).toBe(server!.spanId);
      expect(attempt!.attributes).toMatchObject({ 'http.response.status_code': 101, 'breakwater.protocol': 'websocket', 'breakwater.outcome': 'response' });
      client.close(1000);
      await proxy.stop();
      // The access-log line, written when the tunnel closed, names the same span.
      expect(proxy.log.accessLines()[0]).toMatchObject({ traceId: socketTraceId, spanId: server!.spanId, protocol: 'websocket', status: 101 });
    } finally {
      await chat.close();
    }
  });

  it('still drains cleanly when the collector cannot be reached, and says the last spans were lost', async () => {
    // A port nothing listens on any more.
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const port = (gone.address() as AddressInfo).port;
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    setOtelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: '1000' });
    upstream = await startUpstream();
    proxy = await startBreakwater(itemsToCatalog(upstream.origin));
    const response = await request(`${proxy.url()}/items`);
    await response.body.dump();
    expect(response.statusCode).toBe(200);

    await expect(proxy.stop()).resolves.toBeUndefined();
    expect(proxy.log.lines.find((line) => line.msg === 'the last spans could not be exported')).toMatchObject({ level: 40 });
    expect(proxy.log.lines.at(-1)).toMatchObject({ msg: 'stopped' });
  });

  describe('sampling by the default parent-based ratio sampler', () => {
    it("follows the caller's decision and samples new traces at OTEL_TRACES_SAMPLER_ARG", async () => {
      // A ratio of 0: Breakwater starts no trace of its own.
      setOtelEnv(exportTo(receiver, { OTEL_TRACES_SAMPLER_ARG: '0' }));
      const before = receiver.spans().length;
      upstream = await startUpstream();
      proxy = await startBreakwater(itemsToCatalog(upstream.origin));
      const sampledTraceId = 'b'.repeat(32);
      const unsampledTraceId = 'c'.repeat(32);
      for (const headers of [
        {},
        { traceparent: traceparent(sampledTraceId, callerSpanId, true) },
        { traceparent: traceparent(unsampledTraceId, callerSpanId, false) },
      ]) {
        const response = await request(`${proxy.url()}/items`, { headers });
        await response.body.dump();
        expect(response.statusCode).toBe(200);
      }
      await proxy.stop();

      // Only the trace the caller sampled was exported.
      const spans = spansSince(before);
      expect(new Set(spans.map((span) => span.traceId))).toEqual(new Set([sampledTraceId]));
      expect(serverSpans(spans)).toHaveLength(1);
      expect(clientSpans(spans)).toHaveLength(1);

      // The decision still travels upstream: a new trace for the untraced caller, the caller's
      // trace under Breakwater's own span id for the unsampled one, both not sampled.
      const [fresh, sampled, unsampled] = upstream.requests.map(receivedTraceparent);
      expect(fresh!.flags).toBe('00');
      expect(fresh!.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect([sampledTraceId, unsampledTraceId]).not.toContain(fresh!.traceId);
      expect(sampled).toEqual({ traceId: sampledTraceId, parentId: clientSpans(spans)[0]!.spanId, flags: '01' });
      expect(unsampled!.traceId).toBe(unsampledTraceId);
      expect(unsampled!.parentId).not.toBe(callerSpanId);
      expect(unsampled!.flags).toBe('00');

      // Every line of a caller that sent a traceparent names its trace, sampled or not; only the
      // sampled request has a span of Breakwater's to name.
      const lines = proxy.log.accessLines();
      expect(lines.map((line) => line.traceId)).toEqual([undefined, sampledTraceId, unsampledTraceId]);
      expect(lines.map((line) => line.spanId)).toEqual([undefined, serverSpans(spans)[0]!.spanId, undefined]);
    });
  });

  describe('when tracing is off', () => {
    const cases: [string, () => Record<string, string>][] = [
      ['no OTLP endpoint is set', () => ({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_SERVICE_NAME: 'checkout' })],
      ['OTEL_SDK_DISABLED is true', () => exportTo(receiver, { OTEL_SDK_DISABLED: 'true' })],
      ['OTEL_TRACES_EXPORTER is none', () => ({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.origin}/v1/traces`, OTEL_TRACES_EXPORTER: 'none' })],
      ['OTEL_TRACES_EXPORTER names only exporters the SDK does not have', () => exportTo(receiver, { OTEL_TRACES_EXPORTER: 'jaeger,prometheus' })],
    ];

    it.each(cases)('exports nothing and passes traceparent and tracestate on unchanged when %s', async (_case, env) => {
      setOtelEnv(env());
      const exportsBefore = receiver.exports;
      upstream = await startUpstream();
      proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog: {endpoints: ["${upstream.origin}"]}
routes:
  - name: items
    match: {pathPrefix: /}
    upstream: catalog
    retry: {maxAttempts: 2, retryOn: [503], backoff: {type: none}}
`);
      const sent = traceparent(callerTraceId, callerSpanId, true);
      const response = await request(`${proxy.url()}/items`, { headers: { traceparent: sent, tracestate: 'vendor=abc' } });
      await response.body.dump();
      expect(response.statusCode).toBe(200);
      await proxy.stop();

      expect(headerValues(upstream.requests[0]!, 'traceparent')).toEqual([sent]);
      expect(headerValues(upstream.requests[0]!, 'tracestate')).toEqual(['vendor=abc']);
      expect(receiver.exports).toBe(exportsBefore);
      // The log line still joins the caller's trace, though Breakwater made no span of its own.
      const [line] = proxy.log.accessLines();
      expect(line).toHaveProperty('requestId');
      expect(line).toMatchObject({ traceId: callerTraceId });
      expect(line).not.toHaveProperty('spanId');
      expect(proxy.log.lines.some((logged) => logged.msg === 'tracing started')).toBe(false);
    });

    it('says so when OTEL_TRACES_EXPORTER names no exporter the SDK has', async () => {
      setOtelEnv(exportTo(receiver, { OTEL_TRACES_EXPORTER: 'jaeger' }));
      upstream = await startUpstream();
      proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: items, match: {pathPrefix: /}, upstream: catalog}
`);
      await proxy.stop();

      const warning = proxy.log.lines.find((logged) => logged.msg === 'OTEL_TRACES_EXPORTER names no exporter the SDK knows; tracing is off');
      expect(warning).toMatchObject({ level: 40, component: 'opentelemetry', OTEL_TRACES_EXPORTER: 'jaeger' });
    });
  });
});
