import { PassThrough, pipeline, type Readable } from 'node:stream';
import { abortReason, onAbort } from './cancel.ts';
import { ProxyError } from './errors.ts';
import type { ProxyRequest } from './request.ts';

/** The request's Content-Length, or undefined when it has none (a chunked body). */
function contentLength(headers: readonly string[]): number | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === 'content-length') return Number(headers[i + 1]);
  }
  return undefined;
}

/** The already-read chunks, then the rest of `source`, as one stream. */
function resume(prefix: readonly Buffer[], source: Readable): Readable {
  const joined = new PassThrough();
  for (const chunk of prefix) joined.write(chunk);
  // pipeline passes an error either way: a failed upload fails the attempt, and an aborted
  // attempt stops reading the client.
  pipeline(source, joined, () => undefined);
  return joined;
}

/**
 * Makes a streaming request body replayable when it fits in `limit` bytes: reads it into a
 * Buffer that every attempt sends as is. Resolves true when it was buffered, false when it is
 * larger and streams through once (the already-read part first). A body declared larger than
 * `limit` is not read at all. Rejects if `signal` aborts (the route timeout, the client gone) or
 * the body fails while it is being read.
 */
export function bufferBody(request: ProxyRequest, source: Readable, limit: number, signal: AbortSignal): Promise<boolean> {
  const declared = contentLength(request.headers);
  if (declared !== undefined && declared > limit) return Promise.resolve(false);

  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (): void => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      stopListening();
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      source.pause();
      settle();
      request.body = resume(chunks, source);
      resolve(false);
    };
    const onEnd = (): void => {
      settle();
      request.body = Buffer.concat(chunks, size);
      resolve(true);
    };
    const onError = (error: unknown): void => {
      settle();
      reject(
        error instanceof ProxyError
          ? error
          : signal.aborted
            ? abortReason(signal)
            : new ProxyError('bad_request', { message: 'the request body could not be read', cause: error }),
      );
    };
    // The route timeout or the client leaving ends the wait for the body too.
    const stopListening = onAbort(signal, (reason) => {
      settle();
      // The body is abandoned, not destroyed (that would close the socket before the client
      // gets its answer): let it drain, and let its late errors go unheard.
      source.on('error', () => undefined);
      source.resume();
      reject(reason);
    });
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
  });
}
