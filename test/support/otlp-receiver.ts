import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** An attribute value as OTLP/JSON encodes it (64-bit integers travel as strings). */
type AnyValue = {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
};

interface KeyValue {
  key: string;
  value: AnyValue;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
  events?: { name: string; attributes?: KeyValue[] }[];
  status?: { code?: number };
}

interface ExportTraceServiceRequest {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

export type AttributeValue = string | number | boolean | AttributeValue[];

/** A span as received, with its attributes decoded into a plain object. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Empty for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP's SpanKind: 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Record<string, AttributeValue>;
  readonly events: { readonly name: string; readonly attributes: Record<string, AttributeValue> }[];
  /** OTLP's StatusCode: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  /** The attributes of the resource that exported the span. */
  readonly resource: Record<string, AttributeValue>;
}

export const spanKind = { server: 2, client: 3 } as const;

export interface OtlpReceiver {
  /** `http://127.0.0.1:PORT`, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly origin: string;
  /** Export requests received so far (POST /v1/traces). */
  readonly exports: number;
  /** Every span received so far, in arrival order. */
  spans(): ReceivedSpan[];
  close(): Promise<void>;
}

function decodeValue(value: AnyValue): AttributeValue {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(decodeValue);
  throw new Error(`unexpected OTLP value ${JSON.stringify(value)}`);
}

function decodeAttributes(attributes: KeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((attributes ?? []).map((attribute) => [attribute.key, decodeValue(attribute.value)]));
}

/**
 * An OTLP/HTTP trace receiver on 127.0.0.1 with an ephemeral port. It accepts the JSON encoding
 * (OTEL_EXPORTER_OTLP_PROTOCOL=http/json) and answers 415 to anything else, so a test that
 * forgets the protocol fails instead of receiving nothing.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const received: ReceivedSpan[] = [];
  const sockets = new Set<Socket>();
  let exports = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
        res.writeHead(415).end();
        return;
      }
      exports += 1;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ExportTraceServiceRequest;
      for (const resourceSpans of body.resourceSpans ?? []) {
        const resource = decodeAttributes(resourceSpans.resource?.attributes);
        for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
          for (const span of scopeSpans.spans ?? []) {
            received.push({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              kind: span.kind,
              attributes: decodeAttributes(span.attributes),
              events: (span.events ?? []).map((event) => ({ name: event.name, attributes: decodeAttributes(event.attributes) })),
              statusCode: span.status?.code ?? 0,
              resource,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    get exports() {
      return exports;
    },
    spans: () => [...received],
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
