// OTLP/HTTP export over undici instead of node:http.
//
// The SDK's own transport sends each batch with node:http's client and pipes it from a fresh
// Readable. Those objects run through the same Node functions as the proxy's own traffic
// (stream reads and writes, the HTTP parser's callbacks, socket teardown), and V8 then
// deoptimises the proxy's hottest code and recompiles it for more shapes, which costs the
// proxy throughput (docs/decisions/0002 has the measurements). undici is already the data
// path's client; a dispatch handler that collects the answer adds no new
// kind of stream. What is sent and how failures are retried follow the SDK's transport.
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { ExportResponse, IExporterTransport } from '@opentelemetry/otlp-exporter-base';
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base';
import type { Dispatcher } from 'undici';
import Pool from 'undici/lib/dispatcher/pool.js';
import { systemClock, type Clock } from '../../runtime/clock.ts';

const gzipAsync = promisify(gzip);

/** The parts of the SDK's OTLP/HTTP configuration a transport needs. */
export interface OtlpHttpTarget {
  readonly url: string;
  readonly headers: () => Promise<Record<string, string>>;
  readonly compression: 'gzip' | 'none';
  readonly userAgent?: string | undefined;
}

/** As the SDK's transport: the statuses OTLP/HTTP says to retry. */
const retryableStatuses = new Set([429, 502, 503, 504]);
/** The SDK's retryable socket errors, and undici's names for a timed-out or broken exchange. */
const retryableErrorCodes = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
]);
/** As the SDK's transport: a cap on what is read back of a collector's answer. */
const maxResponseBytes = 4 * 1024 * 1024;
const userAgent = 'Breakwater OTLP exporter';

/** When to send a batch again after a retryable failure, within the export's timeout. */
export interface ExportRetry {
  readonly retries: number;
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly jitter: number;
}

/** The SDK's schedule: 5 retries, 1 s growing by 1.5× to 5 s, ±20% jitter. */
export const sdkExportRetry: ExportRetry = { retries: 5, initialMs: 1000, maxMs: 5000, multiplier: 1.5, jitter: 0.2 };

export class UndiciExporterTransport implements IExporterTransport {
  readonly #target: OtlpHttpTarget;
  readonly #pool: Pool;
  readonly #path: string;
  readonly #clock: Clock;
  readonly #retry: ExportRetry;
  readonly #random: () => number;

  constructor(target: OtlpHttpTarget, options: { clock?: Clock; retry?: ExportRetry; random?: () => number } = {}) {
    const url = new URL(target.url);
    this.#target = target;
    // One connection: batches go one after another, and the collector sees one client.
    this.#pool = new Pool(url.origin, { connections: 1 });
    this.#path = `${url.pathname}${url.search}`;
    this.#clock = options.clock ?? systemClock;
    this.#retry = options.retry ?? sdkExportRetry;
    this.#random = options.random ?? Math.random;
  }

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    const clock = this.#clock;
    const deadline = clock.now() + timeoutMillis;
    // Set as the SDK's transport sets it, over a User-Agent among the variables' headers.
    const headers: Record<string, string> = { ...(await this.#target.headers()), 'User-Agent': this.#target.userAgent === undefined ? userAgent : `${this.#target.userAgent} ${userAgent}` };
    let body = data;
    if (this.#target.compression === 'gzip') {
      body = await gzipAsync(data);
      headers['content-encoding'] = 'gzip';
    }
    const schedule = this.#retry;
    let backoff = schedule.initialMs;
    let result = await this.#post(body, headers, timeoutMillis);
    for (let retry = 0; result.status === 'retryable' && retry < schedule.retries; retry++) {
      const jittered = Math.min(backoff * (1 + (this.#random() * 2 - 1) * schedule.jitter), schedule.maxMs);
      backoff *= schedule.multiplier;
      const wait = result.retryInMillis ?? jittered;
      const remaining = deadline - clock.now();
      if (wait > remaining) break;
      await new Promise<void>((resolve) => clock.setTimer(wait, resolve));
      // At least 1 ms: undici reads a timeout of 0 as none at all.
      result = await this.#post(body, headers, Math.max(deadline - clock.now(), 1));
    }
    return result;
  }

  shutdown(): void {
    void this.#pool.close();
  }

  #post(body: Uint8Array, headers: Record<string, string>, timeoutMillis: number): Promise<ExportResponse> {
    return new Promise((resolve) => {
      this.#pool.dispatch(
        { path: this.#path, method: 'POST', headers, body, headersTimeout: timeoutMillis, bodyTimeout: timeoutMillis },
        new ExportAnswer(resolve, this.#clock),
      );
    });
  }
}

/** Collects the collector's answer to one POST and says what the SDK should make of it. */
class ExportAnswer implements Dispatcher.DispatchHandler {
  readonly #resolve: (response: ExportResponse) => void;
  readonly #clock: Clock;
  readonly #chunks: Buffer[] = [];
  #bytes = 0;
  #status = 0;
  #statusText = '';
  #retryAfter: string | undefined;

  constructor(resolve: (response: ExportResponse) => void, clock: Clock) {
    this.#resolve = resolve;
    this.#clock = clock;
  }

  // undici asks for it; an export is not cancelled from outside, its timeouts are undici's.
  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    this.#status = statusCode;
    this.#statusText = statusMessage ?? '';
    const retryAfter = headers['retry-after'];
    this.#retryAfter = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (this.#bytes > maxResponseBytes) {
      controller.abort(new Error(`the OTLP collector's answer exceeded ${maxResponseBytes} bytes`));
      return;
    }
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    const status = this.#status;
    const body = Buffer.concat(this.#chunks);
    if (status >= 200 && status <= 299) this.#resolve({ status: 'success', data: body });
    else if (retryableStatuses.has(status)) this.#resolve({ status: 'retryable', retryInMillis: retryAfterMillis(this.#retryAfter, this.#clock.wallNow()) });
    else this.#resolve({ status: 'failure', error: new OTLPExporterError(this.#statusText, status, body.toString()) });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const code = (error as { code?: unknown }).code;
    const retryable = typeof code === 'string' && retryableErrorCodes.has(code);
    this.#resolve(retryable ? { status: 'retryable', error } : { status: 'failure', error });
  }
}

/**
 * Retry-After in seconds or as a date. Undefined (the backoff's own wait) for 0 and for what it
 * cannot read, where the SDK's transport retries at once.
 */
export function retryAfterMillis(value: string | undefined, wallNow: number): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number.parseInt(value, 10);
  if (Number.isInteger(seconds)) return seconds > 0 ? seconds * 1000 : undefined;
  const delay = new Date(value).getTime() - wallNow;
  return Number.isNaN(delay) ? undefined : Math.max(delay, 0);
}
