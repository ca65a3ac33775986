import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import { WorkerSpanExporter } from '../../../src/telemetry/span-export.ts';

// The worker reads OTEL_EXPORTER_OTLP_* from the environment it starts with; the variable is
// set on process.env itself, which is what a worker inherits.
const savedEndpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;

/** Two finished spans, made by the SDK as Breakwater's would be. */
function finishedSpans(): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
  const tracer = provider.getTracer('breakwater-test');
  tracer.startSpan('GET items', { attributes: { 'breakwater.route': 'items' } }).end();
  tracer.startSpan('GET catalog').end();
  return memory.getFinishedSpans();
}

function exportOnce(exporter: WorkerSpanExporter, spans: ReadableSpan[]): Promise<{ code: number; error?: Error | undefined }> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('WorkerSpanExporter', () => {
  const servers: Server[] = [];

  afterEach(async () => {
    if (savedEndpoint === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = savedEndpoint;
    await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  });

  it('sends each batch as OTLP protobuf from its worker and reports success', async () => {
    const bodies: Buffer[] = [];
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        bodies.push(Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    servers.push(collector);
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = await listen(collector);
    const exporter = new WorkerSpanExporter();
    const spans = finishedSpans();

    const result = await exportOnce(exporter, spans);
    await exporter.shutdown();

    expect(result.code).toBe(0);
    expect(bodies).toHaveLength(1);
    for (const span of spans) expect(bodies[0]!.includes(Buffer.from(span.spanContext().spanId, 'hex'))).toBe(true);
    expect(bodies[0]!.includes(Buffer.from('breakwater.route'))).toBe(true);
  });

  it('reports a failed export with the reason when the collector refuses, and still shuts down', async () => {
    const collector = createServer((_req, res) => res.writeHead(400).end());
    servers.push(collector);
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = await listen(collector);
    const exporter = new WorkerSpanExporter();

    const result = await exportOnce(exporter, finishedSpans());

    expect(result.code).toBe(1);
    expect(result.error?.message).toMatch(/400|Bad Request/);
    await expect(exporter.shutdown()).resolves.toBeUndefined();
  });

  it('flushes by waiting for every batch handed over', async () => {
    let answer: (() => void) | undefined;
    const collector = createServer((req, res) => {
      req.resume();
      req.on('end', () => (answer = () => res.writeHead(200).end()));
    });
    servers.push(collector);
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = await listen(collector);
    const exporter = new WorkerSpanExporter();
    let exported = false;
    exporter.export(finishedSpans(), () => (exported = true));

    const flushed = exporter.forceFlush();
    await expect.poll(() => answer !== undefined).toBe(true);
    expect(exported).toBe(false);
    answer!();
    await flushed;
    expect(exported).toBe(true);
    await exporter.shutdown();
  });
});
