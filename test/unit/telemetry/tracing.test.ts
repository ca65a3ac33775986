import type { IncomingMessage } from 'node:http';
import { ROOT_CONTEXT, SamplingDecision, SpanKind, trace, TraceFlags, type Context } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TraceIdRatioBasedSampler, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ProxyRequest, RequestTrace } from '../../../src/exchange/request.ts';
import { ratioBound } from '../../../src/telemetry/tracing/ids.ts';
import type { Tracing } from '../../../src/telemetry/tracing/spans.ts';
import { samplerFromEnv, startTracing } from '../../../src/telemetry/tracing/start.ts';
import { logSink } from '../../support/log-sink.ts';
import { answered as answeredWith, requestRecord } from '../../support/records.ts';
import { seededRandom } from '../../support/seeded-random.ts';

// The samplers and the SDK read process.env: each test sets the OTEL_* variables it needs.
const outerOtel = Object.entries(process.env).filter(([name]) => name.startsWith('OTEL_'));

function setOtelEnv(vars: Record<string, string>): void {
  for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name];
  Object.assign(process.env, vars);
}

afterAll(() => {
  setOtelEnv(Object.fromEntries(outerOtel) as Record<string, string>);
});

const callerTraceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const callerSpanId = '00f067aa0ba902b7';

/** Trace ids from a seeded random, the same on every run. */
function traceIds(count: number): string[] {
  const random = seededRandom(7);
  const hex = (): string => Math.floor(random() * 2 ** 32).toString(16).padStart(8, '0');
  return Array.from({ length: count }, () => hex() + hex() + hex() + hex());
}

function remoteParent(traceId: string, sampled: boolean): Context {
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: callerSpanId, traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true });
}

describe('the sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose', () => {
  const ids = traceIds(4000);

  /** The share of `ids` sampled for a new trace, under a sampled caller and under an unsampled one. */
  async function shares(env: Record<string, string>): Promise<{ root: number; sampledParent: number; unsampledParent: number }> {
    setOtelEnv(env);
    const { sampler } = await samplerFromEnv(logSink().logger);
    const share = (parent: (traceId: string) => Context): number =>
      ids.filter((traceId) => sampler.shouldSample(parent(traceId), traceId, 'GET', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED)
        .length / ids.length;
    return {
      root: share(() => ROOT_CONTEXT),
      sampledParent: share((traceId) => remoteParent(traceId, true)),
      unsampledParent: share((traceId) => remoteParent(traceId, false)),
    };
  }

  const cases: [string, Record<string, string>, { root: number; sampledParent: number; unsampledParent: number }][] = [
    ['unset: parent-based, every new trace', {}, { root: 1, sampledParent: 1, unsampledParent: 0 }],
    ['unset, with a ratio', { OTEL_TRACES_SAMPLER_ARG: '0.25' }, { root: 0.25, sampledParent: 1, unsampledParent: 0 }],
    ['always_on', { OTEL_TRACES_SAMPLER: 'always_on' }, { root: 1, sampledParent: 1, unsampledParent: 1 }],
    ['always_off', { OTEL_TRACES_SAMPLER: 'always_off' }, { root: 0, sampledParent: 0, unsampledParent: 0 }],
    ['traceidratio', { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }, { root: 0.25, sampledParent: 0.25, unsampledParent: 0.25 }],
    ['traceidratio without a ratio', { OTEL_TRACES_SAMPLER: 'traceidratio' }, { root: 1, sampledParent: 1, unsampledParent: 1 }],
    ['parentbased_always_on', { OTEL_TRACES_SAMPLER: 'parentbased_always_on' }, { root: 1, sampledParent: 1, unsampledParent: 0 }],
    ['parentbased_always_off', { OTEL_TRACES_SAMPLER: 'parentbased_always_off' }, { root: 0, sampledParent: 1, unsampledParent: 0 }],
    ['parentbased_traceidratio', { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }, { root: 0.25, sampledParent: 1, unsampledParent: 0 }],
    ['parentbased_traceidratio at 0', { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, { root: 0, sampledParent: 1, unsampledParent: 0 }],
  ];

  it.each(cases)('%s', async (_name, env, expected) => {
    const measured = await shares(env);
    expect(measured.root).toBeCloseTo(expected.root, 1);
    expect(measured.sampledParent).toBeCloseTo(expected.sampledParent, 1);
    expect(measured.unsampledParent).toBeCloseTo(expected.unsampledParent, 1);
  });

  it('falls back to the parent-based ratio sampler, with a warning, for a sampler it does not know', async () => {
    setOtelEnv({ OTEL_TRACES_SAMPLER: 'jaeger_remote', OTEL_TRACES_SAMPLER_ARG: '0.25' });
    const log = logSink();
    const chosen = await samplerFromEnv(log.logger);
    expect(chosen).toMatchObject({ name: 'parentbased_traceidratio', ratio: 0.25 });
    expect(log.lines.find((line) => line.OTEL_TRACES_SAMPLER === 'jaeger_remote')).toMatchObject({ level: 40 });
    expect(await shares({ OTEL_TRACES_SAMPLER: 'jaeger_remote', OTEL_TRACES_SAMPLER_ARG: '0.25' })).toEqual({
      root: expect.closeTo(0.25, 1) as number,
      sampledParent: 1,
      unsampledParent: 0,
    });
  });

  it('samples every new trace, with a warning, when the ratio is outside 0..1', async () => {
    setOtelEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' });
    const log = logSink();
    expect(await samplerFromEnv(log.logger)).toMatchObject({ name: 'traceidratio', ratio: 1 });
    expect(log.lines.find((line) => line.OTEL_TRACES_SAMPLER_ARG === 1.5)).toMatchObject({ level: 40 });
  });
});

describe('the bound of a ratio sampler', () => {
  it.each([0, 1e-9, 0.001, 0.1, 0.25, 0.5, 0.999, 1])('is the SDK sampler\'s own at ratio %d', (ratio) => {
    const sdk = new TraceIdRatioBasedSampler(ratio) as unknown as { _upperBound: number };
    expect(ratioBound(ratio)).toBe(sdk._upperBound);
  });
});

describe('request traces', () => {
  let tracing: Tracing | undefined;
  let exporter: InMemorySpanExporter;
  let exportProcessor: SimpleSpanProcessor;
  let started: number;

  /** Tracing on, its spans counted when they start and kept in memory when they end. */
  async function startTraced(env: Record<string, string>): Promise<Tracing> {
    setOtelEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', ...env });
    exporter = new InMemorySpanExporter();
    exportProcessor = new SimpleSpanProcessor({ exporter });
    started = 0;
    const counter: SpanProcessor = {
      onStart: () => {
        started += 1;
      },
      onEnd: () => undefined,
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
    tracing = await startTracing({ logger: logSink().logger, spanProcessors: [counter, exportProcessor] });
    if (tracing === undefined) throw new Error('tracing did not start');
    return tracing;
  }

  async function exportedSpans(): Promise<ReadableSpan[]> {
    await exportProcessor.forceFlush();
    return exporter.getFinishedSpans();
  }

  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
  });

  function incoming(headers: Record<string, string> = {}): IncomingMessage {
    return { method: 'GET', url: '/items/7?token=secret', headers: { host: 'catalog.local:8080', ...headers }, socket: { remoteAddress: '127.0.0.1' }, httpVersion: '1.1' } as unknown as IncomingMessage;
  }

  /**
   * The header list one attempt of `requestTrace` goes upstream with, from the caller's raw
   * headers as Node hands them over (any spelling of the names).
   */
  function attemptHeaders(requestTrace: RequestTrace, callerHeaders: string[], attempts = 1): string[] {
    const headers = ['accept', '*/*', ...callerHeaders, 'x-request-id', 'req-1'];
    const request = { route: 'items', upstream: 'catalog', path: '/items/7?token=secret', attempts, headers } as unknown as ProxyRequest;
    const attempt = requestTrace.startAttempt(request, { number: attempts, upstream: 'catalog', origin: 'http://10.0.0.7:9000', remainingMs: 1000, breakerState: 'closed', headers });
    attempt.outcome(answeredWith(200));
    attempt.end();
    return headers;
  }

  function headerValues(headers: string[], name: string): string[] {
    const values: string[] = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) values.push(headers[i + 1]!);
    return values;
  }

  /** The one traceparent a header list carries, split into its fields. */
  function sentTraceparent(headers: string[]): { traceId: string; parentId: string; flags: string } {
    const values = headerValues(headers, 'traceparent');
    expect(values).toHaveLength(1);
    expect(values[0]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
    const [, traceId, parentId, flags] = values[0]!.split('-');
    return { traceId: traceId!, parentId: parentId!, flags: flags! };
  }

  const answered = requestRecord({ route: 'items', upstream: 'catalog', method: 'GET', path: '/items/7', durationMs: 3 });

  describe('at a ratio of 0', () => {
    it('starts a new trace, not sampled, with no span, for a caller that sent no traceparent', async () => {
      const traced = await startTraced({ OTEL_TRACES_SAMPLER_ARG: '0' });
      const first = traced.startRequest(incoming(), 'outbound');
      const firstAttempt = sentTraceparent(attemptHeaders(first, []));
      const retry = sentTraceparent(attemptHeaders(first, [], 2));
      first.end(answered);
      const second = traced.startRequest(incoming(), 'outbound');
      const other = sentTraceparent(attemptHeaders(second, []));
      second.end(answered);

      expect(firstAttempt.flags).toBe('00');
      // Each attempt is a span of its own in the trace; another request is another trace.
      expect(retry.traceId).toBe(firstAttempt.traceId);
      expect(retry.parentId).not.toBe(firstAttempt.parentId);
      expect(other.traceId).not.toBe(firstAttempt.traceId);
      expect([first.traceId, first.spanId]).toEqual([undefined, undefined]);
      expect(started).toBe(0);
      expect(await exportedSpans()).toEqual([]);
    });

    it("continues an unsampled caller's trace under a span id of its own, with the caller's tracestate", async () => {
      const traced = await startTraced({ OTEL_TRACES_SAMPLER_ARG: '0' });
      const requestTrace = traced.startRequest(incoming({ traceparent: `00-${callerTraceId}-${callerSpanId}-00`, tracestate: 'vendor=abc' }), 'outbound');
      const headers = attemptHeaders(requestTrace, ['Traceparent', `00-${callerTraceId}-${callerSpanId}-00`, 'TraceState', 'vendor=abc']);
      requestTrace.end(answered);

      const sent = sentTraceparent(headers);
      expect(sent.traceId).toBe(callerTraceId);
      expect(sent.parentId).not.toBe(callerSpanId);
      expect(sent.flags).toBe('00');
      expect(headerValues(headers, 'tracestate')).toEqual(['vendor=abc']);
      // The other headers pass untouched.
      expect(headerValues(headers, 'accept')).toEqual(['*/*']);
      expect(headerValues(headers, 'x-request-id')).toEqual(['req-1']);
      expect(started).toBe(0);
      expect(await exportedSpans()).toEqual([]);
    });

    it("follows a sampled caller: its trace is recorded under the caller's span", async () => {
      const traced = await startTraced({ OTEL_TRACES_SAMPLER_ARG: '0' });
      const requestTrace = traced.startRequest(incoming({ traceparent: `00-${callerTraceId}-${callerSpanId}-01`, tracestate: 'vendor=abc' }), 'outbound');
      const headers = attemptHeaders(requestTrace, ['traceparent', `00-${callerTraceId}-${callerSpanId}-01`, 'tracestate', 'vendor=abc']);
      requestTrace.end(answered);

      const spans = await exportedSpans();
      const server = spans.find((span) => span.kind === SpanKind.SERVER);
      const client = spans.find((span) => span.kind === SpanKind.CLIENT);
      expect(server?.spanContext().traceId).toBe(callerTraceId);
      expect(server?.parentSpanContext?.spanId).toBe(callerSpanId);
      expect(sentTraceparent(headers)).toEqual({ traceId: callerTraceId, parentId: client!.spanContext().spanId, flags: '01' });
      expect(headerValues(headers, 'tracestate')).toEqual(['vendor=abc']);
      expect(requestTrace.traceId).toBe(callerTraceId);
    });
  });

  describe('at a ratio of 1', () => {
    it('records a new trace, server and client span, under the trace id the upstream is sent', async () => {
      const traced = await startTraced({ OTEL_TRACES_SAMPLER_ARG: '1' });
      const requestTrace = traced.startRequest(incoming(), 'outbound');
      const headers = attemptHeaders(requestTrace, []);
      requestTrace.end(answered);

      const spans = await exportedSpans();
      expect(started).toBe(2);
      expect(spans).toHaveLength(2);
      const server = spans.find((span) => span.kind === SpanKind.SERVER)!;
      const client = spans.find((span) => span.kind === SpanKind.CLIENT)!;
      const sent = sentTraceparent(headers);
      expect(sent).toEqual({ traceId: server.spanContext().traceId, parentId: client.spanContext().spanId, flags: '01' });
      expect(server.parentSpanContext).toBeUndefined();
      expect(client.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
      // The access log names the server span.
      expect([requestTrace.traceId, requestTrace.spanId]).toEqual([server.spanContext().traceId, server.spanContext().spanId]);
      expect(server.attributes).toMatchObject({ 'http.request.method': 'GET', 'url.path': '/items/7', 'server.address': 'catalog.local', 'server.port': 8080 });
      expect(client.attributes).toMatchObject({ 'server.address': '10.0.0.7', 'server.port': 9000, 'breakwater.outcome': 'response' });
    });

    it("follows an unsampled caller: nothing is recorded and the upstream is told so", async () => {
      const traced = await startTraced({ OTEL_TRACES_SAMPLER_ARG: '1' });
      const requestTrace = traced.startRequest(incoming({ traceparent: `00-${callerTraceId}-${callerSpanId}-00` }), 'outbound');
      const headers = attemptHeaders(requestTrace, ['traceparent', `00-${callerTraceId}-${callerSpanId}-00`]);
      requestTrace.end(answered);

      expect(sentTraceparent(headers)).toMatchObject({ traceId: callerTraceId, flags: '00' });
      expect(headerValues(headers, 'tracestate')).toEqual([]);
      expect(started).toBe(0);
      expect(await exportedSpans()).toEqual([]);
    });
  });

  it('records exactly the new traces it tells the upstream are sampled', async () => {
    const traced = await startTraced({ OTEL_TRACES_SAMPLER_ARG: '0.5' });
    const toldSampled = new Set<string>();
    const toldUnsampled = new Set<string>();
    for (let i = 0; i < 200; i += 1) {
      const requestTrace = traced.startRequest(incoming(), 'outbound');
      const sent = sentTraceparent(attemptHeaders(requestTrace, []));
      requestTrace.end(answered);
      (sent.flags === '01' ? toldSampled : toldUnsampled).add(sent.traceId);
    }

    const recorded = new Set((await exportedSpans()).map((span) => span.spanContext().traceId));
    expect(recorded).toEqual(toldSampled);
    // Some of each, or the ratio was not applied at all.
    expect(toldSampled.size).toBeGreaterThan(50);
    expect(toldUnsampled.size).toBeGreaterThan(50);
    // Decided on the trace id exactly as the SDK's ratio sampler decides, so that a service
    // behind Breakwater with the same sampler and ratio agrees on every trace.
    const sdkSampler = new TraceIdRatioBasedSampler(0.5);
    const sdkSampled = (traceId: string) => sdkSampler.shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
    expect([...toldSampled].filter((traceId) => !sdkSampled(traceId))).toEqual([]);
    expect([...toldUnsampled].filter(sdkSampled)).toEqual([]);
  });
});
