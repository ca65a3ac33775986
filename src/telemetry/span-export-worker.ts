// The worker thread that sends serialised spans to the OTLP/HTTP collector. The OTLP exporter's
// own HTTP delegate does the sending, configured by the same OTEL_EXPORTER_OTLP_* variables
// (endpoint, headers, timeout, compression, retries); only its serialiser is replaced, as the
// spans arrive already encoded. Keeping this HTTP client off the main thread keeps its request
// and socket objects out of the Node stream and HTTP code the proxy's data path runs on.

import { parentPort } from 'node:worker_threads';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { SpanExportReply, SpanExportRequest } from './span-export.ts';

/** One batch as the main thread encoded it. */
interface EncodedSpans {
  readonly bytes: Uint8Array;
  readonly spans: number;
}

const delegate = createOtlpHttpExportDelegate<EncodedSpans, unknown>(
  convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
  { serializeRequest: (batch) => batch.bytes, deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data) },
  'otlp_http_span_exporter',
  { name: 'span', countItems: (batch) => batch.spans },
  undefined,
);

const port = parentPort!;
port.on('message', (message: SpanExportRequest) => {
  if (message.kind === 'export') {
    delegate.export({ bytes: message.bytes, spans: message.spans }, (result) => {
      const reply: SpanExportReply = { kind: 'result', id: message.id, failed: result.code !== 0, error: result.error?.message };
      port.postMessage(reply);
    });
    return;
  }
  void delegate.shutdown().finally(() => {
    const reply: SpanExportReply = { kind: 'closed' };
    port.postMessage(reply);
  });
});
