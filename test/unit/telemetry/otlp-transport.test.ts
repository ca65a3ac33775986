import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base';
import { afterEach, describe, expect, it } from 'vitest';
import { retryAfterMillis, UndiciExporterTransport, type ExportRetry } from '../../../src/telemetry/tracing/otlp-transport.ts';

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

/** A collector on loopback that answers each POST with the next of `answers`, the last one repeated. */
async function startCollector(answers: { status: number; headers?: Record<string, string>; body?: string }[]) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      const answer = answers[Math.min(received.length, answers.length) - 1]!;
      res.writeHead(answer.status, answer.headers).end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const quickRetry: ExportRetry = { retries: 5, initialMs: 1, maxMs: 5, multiplier: 1.5, jitter: 0.2 };
const batch = new TextEncoder().encode('{"resourceSpans":[]}');

describe('OTLP/HTTP export over undici', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function transportTo(answers: Parameters<typeof startCollector>[0], options: { compression?: 'gzip' | 'none'; userAgent?: string } = {}) {
    const collector = await startCollector(answers);
    const transport = new UndiciExporterTransport(
      { url: collector.url, headers: () => Promise.resolve({ 'Content-Type': 'application/json', 'api-key': 'secret' }), compression: options.compression ?? 'none', userAgent: options.userAgent },
      { retry: quickRetry },
    );
    cleanups.push(() => transport.shutdown(), collector.close);
    return { collector, transport };
  }

  it('posts the batch with the configured headers and reports success with the answer', async () => {
    const { collector, transport } = await transportTo([{ status: 200, body: '{}' }], { userAgent: 'checkout' });

    const response = await transport.send(batch, 5000);

    expect(response).toEqual({ status: 'success', data: Buffer.from('{}') });
    expect(collector.received).toHaveLength(1);
    const [post] = collector.received;
    expect(post!.body).toEqual(Buffer.from(batch));
    expect(post!.headers).toMatchObject({ 'content-type': 'application/json', 'api-key': 'secret', 'user-agent': 'checkout Breakwater OTLP exporter' });
  });

  it('gzips the batch when compression is gzip', async () => {
    const { collector, transport } = await transportTo([{ status: 200 }], { compression: 'gzip' });

    await transport.send(batch, 5000);

    expect(collector.received[0]!.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(collector.received[0]!.body)).toEqual(Buffer.from(batch));
  });

  it('sends again after a retryable status, and succeeds when the collector recovers', async () => {
    const { collector, transport } = await transportTo([{ status: 503 }, { status: 429 }, { status: 200 }]);

    const response = await transport.send(batch, 5000);

    expect(response.status).toBe('success');
    expect(collector.received).toHaveLength(3);
  });

  it('gives up as retryable after five retries', async () => {
    const { collector, transport } = await transportTo([{ status: 502 }]);

    const response = await transport.send(batch, 5000);

    expect(response.status).toBe('retryable');
    expect(collector.received).toHaveLength(6);
  });

  it('does not wait past the export timeout when the collector asks for a later retry', async () => {
    const { collector, transport } = await transportTo([{ status: 503, headers: { 'retry-after': '60' } }]);

    const response = await transport.send(batch, 5000);

    expect(response).toEqual({ status: 'retryable', retryInMillis: 60_000 });
    expect(collector.received).toHaveLength(1);
  });

  it('fails at once, with the status and the body, when the collector refuses the batch', async () => {
    const { collector, transport } = await transportTo([{ status: 400, body: 'bad span' }]);

    const response = await transport.send(batch, 5000);

    expect(response.status).toBe('failure');
    const error = (response as { error: OTLPExporterError }).error;
    expect(error).toBeInstanceOf(OTLPExporterError);
    expect(error).toMatchObject({ code: 400, data: 'bad span' });
    expect(collector.received).toHaveLength(1);
  });

  it('reports a collector that is not listening as retryable', async () => {
    const collector = await startCollector([{ status: 200 }]);
    await collector.close();
    const transport = new UndiciExporterTransport({ url: collector.url, headers: () => Promise.resolve({}), compression: 'none' }, { retry: quickRetry });
    cleanups.push(() => transport.shutdown());

    const response = await transport.send(batch, 5000);

    expect(response).toMatchObject({ status: 'retryable', error: { code: 'ECONNREFUSED' } });
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-12-06T03:00:00Z');

  it('reads seconds and dates, and leaves the backoff to anything else', () => {
    expect(retryAfterMillis('2', now)).toBe(2000);
    expect(retryAfterMillis('0', now)).toBeUndefined();
    expect(retryAfterMillis(undefined, now)).toBeUndefined();
    expect(retryAfterMillis('soon', now)).toBeUndefined();
    expect(retryAfterMillis('Sun, 06 Dec 2026 02:59:50 GMT', now)).toBe(0);
    expect(retryAfterMillis('Sun, 06 Dec 2026 03:02:00 GMT', now)).toBe(120_000);
  });
});
