// Span export over OTLP/HTTP (protobuf) with the sending in a worker thread. The spans are
// encoded where they live, on the main thread, with the OTLP exporter's own serialiser; the
// bytes go to src/telemetry/span-export-worker.ts, which posts them to the collector.
//
// Why a worker: with the exporter's HTTP client on the main thread, Node's stream and HTTP
// functions that every proxied request runs through also see the exporter's request and socket
// objects, and V8 deoptimises them into slower, polymorphic code. Measured on the benchmark
// machine at 1% sampling, that cost every request about 12% more CPU, where encoding the same
// spans without sending them cost 3%.

import { Worker } from 'node:worker_threads';
import type { ExportResult } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

export type SpanExportRequest =
  | { readonly kind: 'export'; readonly id: number; readonly bytes: Uint8Array; readonly spans: number }
  | { readonly kind: 'shutdown' };

export type SpanExportReply =
  | { readonly kind: 'result'; readonly id: number; readonly failed: boolean; readonly error: string | undefined }
  | { readonly kind: 'closed' };

/** ExportResultCode of @opentelemetry/core. */
const success = 0;
const failed = 1;

// Next to this file: the .ts source in a checkout, the compiled .js once built.
const workerFile = new URL(import.meta.url.endsWith('.ts') ? './span-export-worker.ts' : './span-export-worker.js', import.meta.url);

/** A SpanExporter for the SDK's batch processor that sends each batch from a worker thread. */
export class WorkerSpanExporter implements SpanExporter {
  readonly #worker: Worker;
  readonly #pending = new Map<number, (result: ExportResult) => void>();
  #nextId = 0;
  #drained: (() => void) | undefined;
  #closed: Promise<void> | undefined;

  constructor() {
    this.#worker = new Worker(workerFile);
    // The batch processor decides when spans go; an idle worker must not keep Breakwater alive.
    this.#worker.unref();
    this.#worker.on('message', (reply: SpanExportReply) => {
      if (reply.kind === 'result') this.#settle(reply.id, reply.failed ? { code: failed, error: new Error(reply.error ?? 'the export failed') } : { code: success });
    });
    this.#worker.on('error', (error) => {
      for (const id of [...this.#pending.keys()]) this.#settle(id, { code: failed, error });
    });
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const bytes = ProtobufTraceSerializer.serializeRequest(spans);
    if (bytes === undefined) {
      resultCallback({ code: failed, error: new Error('the spans could not be encoded') });
      return;
    }
    const id = this.#nextId++;
    this.#pending.set(id, resultCallback);
    const request: SpanExportRequest = { kind: 'export', id, bytes, spans: spans.length };
    this.#worker.postMessage(request);
  }

  /** Resolves once every batch handed over has been answered (sent, or failed). */
  forceFlush(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        previous?.();
        resolve();
      };
    });
  }

  /** Waits for the batches in flight, stops the exporter in the worker, then the worker. */
  shutdown(): Promise<void> {
    this.#closed ??= this.forceFlush().then(
      () =>
        new Promise<void>((resolve) => {
          this.#worker.on('message', (reply: SpanExportReply) => {
            if (reply.kind === 'closed') resolve();
          });
          this.#worker.once('exit', () => resolve());
          const request: SpanExportRequest = { kind: 'shutdown' };
          this.#worker.postMessage(request);
        }).then(() => this.#worker.terminate().then(() => undefined)),
    );
    return this.#closed;
  }

  #settle(id: number, result: ExportResult): void {
    const callback = this.#pending.get(id);
    if (callback === undefined) return;
    this.#pending.delete(id);
    callback(result);
    if (this.#pending.size === 0) {
      const drained = this.#drained;
      this.#drained = undefined;
      drained?.();
    }
  }
}
