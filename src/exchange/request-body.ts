import { PassThrough, Readable, pipeline } from 'node:stream';
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

/** What a BodyCapture kept of a request body. */
export type CapturedBody =
  /** The whole body, within the limit. */
  | { readonly kind: 'whole'; readonly bytes: Buffer }
  /** Larger than the limit: no copy kept. `size` is the declared length; null when none was declared. */
  | { readonly kind: 'too-large'; readonly size: number | null }
  /** The body failed or was cut off before its end: what was kept is not the request. */
  | { readonly kind: 'cut'; readonly size: number };

/**
 * A request body that streams on as before while a copy of it, up to `limit` bytes, is kept
 * aside, for whoever may need the request again after it is over. It reads its source only
 * when it is read itself, so a body nobody reads is left to Node as it would be without the
 * copy, and ending it (an upstream giving up on it) ends its source the same way.
 */
export class BodyCapture {
  readonly #source: Readable;
  readonly #limit: number;
  readonly #declared: number | undefined;
  readonly #stream: Readable;
  /** The copy so far; null once it is past the limit or no longer wanted. */
  #chunks: Buffer[] | null = [];
  #seen = 0;
  #started = false;
  #outcome: CapturedBody | undefined;
  #waiting: ((body: CapturedBody) => void) | undefined;

  constructor(source: Readable, limit: number, declaredLength?: number) {
    this.#source = source;
    this.#limit = limit;
    this.#declared = declaredLength;
    // Declared larger than the limit: nothing of it is worth copying.
    if (declaredLength !== undefined && declaredLength > limit) this.#chunks = null;
    this.#stream = new Readable({
      read: () => {
        if (this.#started) source.resume();
        else this.#start(true);
      },
      destroy: (error, done) => {
        // Whoever read the body gave up on it (an attempt that failed): its source goes the
        // way it would have gone had it been read directly.
        if (!source.readableEnded && !source.destroyed) source.destroy(error ?? undefined);
        this.#finish(this.#cut());
        done(error);
      },
    });
  }

  /** The body to send upstream in place of the source. */
  get stream(): Readable {
    return this.#stream;
  }

  /**
   * What was kept, once it is known: the body ended within the limit, passed it, or was cut.
   * Reads the rest of the body itself when nobody does any more, dropping what is past the
   * limit, so the client's connection is drained as it would be without the copy.
   */
  settle(): Promise<CapturedBody> {
    if (this.#chunks === null) this.#finish({ kind: 'too-large', size: this.#declared ?? null });
    const source = this.#source;
    if (!this.#started) {
      if (source.destroyed && !source.readableEnded) this.#finish(this.#cut());
      else this.#start(false);
    } else if (!this.#stream.destroyed && !this.#stream.readableEnded) {
      // Nobody may be reading any more (the attempts are over): let the rest flow.
      this.#stream.resume();
    }
    if (this.#outcome !== undefined) return Promise.resolve(this.#outcome);
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  /** The copy is not needed: it is dropped, and the body streams on untouched. */
  release(): void {
    this.#chunks = null;
    this.#outcome ??= { kind: 'too-large', size: null };
  }

  #cut(): CapturedBody {
    return { kind: 'cut', size: this.#seen };
  }

  /** Starts reading the source: into the stream when it is read, or into nothing when only the copy is wanted. */
  #start(intoStream: boolean): void {
    this.#started = true;
    const source = this.#source;
    const stream = this.#stream;
    source.on('data', (chunk: Buffer) => {
      this.#keep(chunk);
      if (intoStream && !stream.push(chunk)) source.pause();
    });
    source.once('end', () => {
      const chunks = this.#chunks;
      this.#finish(chunks === null ? { kind: 'too-large', size: this.#declared ?? this.#seen } : { kind: 'whole', bytes: Buffer.concat(chunks, this.#seen) });
      if (intoStream) stream.push(null);
    });
    source.on('error', (error) => {
      this.#finish(this.#cut());
      if (intoStream) stream.destroy(error);
    });
    source.once('close', () => {
      if (!source.readableEnded) this.#finish(this.#cut());
    });
  }

  #keep(chunk: Buffer): void {
    this.#seen += chunk.length;
    if (this.#chunks === null) return;
    if (this.#seen <= this.#limit) {
      this.#chunks.push(chunk);
      return;
    }
    this.#chunks = null;
    // Someone waits for the copy: past the limit is all there is to know.
    if (this.#waiting !== undefined) this.#finish({ kind: 'too-large', size: this.#declared ?? null });
  }

  #finish(outcome: CapturedBody): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = outcome;
    this.#chunks = null;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.(outcome);
  }
}
