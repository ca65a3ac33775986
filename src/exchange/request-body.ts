import { PassThrough, pipeline, type Readable } from 'node:stream';
import { abortReason, hasEnded, onScopeEnd } from './cancel.ts';
import type { CallScope } from './handler.ts';
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
 * `limit` is not read at all. Rejects if `scope` ends (the route timeout, the client gone) or
 * the body fails while it is being read.
 */
export function bufferBody(request: ProxyRequest, source: Readable, limit: number, scope: CallScope): Promise<boolean> {
  const declared = contentLength(request.headers);
  if (declared !== undefined && declared > limit) return Promise.resolve(false);

  const signal = scope.signal;
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
      // One chunk (a small body, most often) is the body as it is: no copy.
      request.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
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
    const stopListening = onScopeEnd(scope, (reason) => {
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

/** The outcome of a copy released unread: nobody asks for it. */
const notWanted: CapturedBody = { kind: 'too-large', size: null };

/**
 * A copy of a request body, up to `limit` bytes, kept aside while the body streams as it
 * would without it, for whoever may need the request again once it is over. It taps the
 * chunks the body emits, however and by whomever it is read, rather than standing between the
 * body and its reader as a stream of its own: a request that succeeds then costs a list of
 * chunk references, not a second stream, and the body's flow control, its end and its
 * destruction (an upstream giving up on it) are the reader's, as without the copy.
 */
export class BodyCapture {
  readonly #source: Readable;
  readonly #limit: number;
  readonly #declared: number | undefined;
  /** The copy so far; null once it is past the limit or no longer wanted. */
  #chunks: Buffer[] | null;
  #seen = 0;
  #outcome: CapturedBody | undefined;
  #waiting: ((body: CapturedBody) => void) | undefined;
  /** The source's own emit, while the copy taps it. */
  #original: Readable['emit'] | undefined;

  constructor(source: Readable, limit: number, declaredLength?: number) {
    this.#source = source;
    this.#limit = limit;
    this.#declared = declaredLength;
    // Declared larger than the limit: nothing of it is worth copying.
    this.#chunks = declaredLength !== undefined && declaredLength > limit ? null : [];
    if (this.#chunks !== null) this.#tap();
  }

  /**
   * What was kept, once it is known: the body ended within the limit, passed it, or was cut.
   * Lets the rest of the body flow when nobody reads it any more, dropping what is past the
   * limit, so the client's connection is drained as Node would drain it without the copy.
   */
  settle(): Promise<CapturedBody> {
    const source = this.#source;
    if (this.#outcome === undefined) {
      if (source.readableEnded) this.#finish(this.#ended());
      else if (source.destroyed) this.#finish(this.#cut());
      else {
        if (this.#chunks === null) this.#finish({ kind: 'too-large', size: this.#declared ?? null });
        source.once('end', () => this.#finish(this.#ended()));
        source.once('close', () => this.#finish(source.readableEnded ? this.#ended() : this.#cut()));
        // Without a listener of its own an 'error' would be thrown; the reader hears it too.
        source.on('error', () => this.#finish(this.#cut()));
        // Nobody reads it (an attempt never started, or gave up on it without ending it).
        if (source.readableFlowing !== true) source.resume();
      }
    }
    if (this.#outcome !== undefined) return Promise.resolve(this.#outcome);
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  /** Stops waiting for a body that does not end: the copy is cut where it stands. */
  abandon(): void {
    this.#finish(this.#cut());
  }

  /** The copy is not needed: it is dropped, and the body streams on untouched. */
  release(): void {
    this.#chunks = null;
    this.#outcome ??= notWanted;
    this.#stopTapping();
  }

  /** Copies each chunk the source emits, from now on. */
  #tap(): void {
    const source = this.#source;
    const original = source.emit;
    this.#original = original;
    const keep = (chunk: unknown): void => this.#keep(chunk);
    source.emit = function (this: Readable, event: string | symbol, chunk?: unknown) {
      if (event === 'data') keep(chunk);
      // Most events carry at most one argument: no arguments object for them.
      // eslint-disable-next-line prefer-rest-params -- passes every argument on, without a copy
      return arguments.length <= 2 ? original.call(this, event, chunk) : (Reflect.apply(original, this, arguments) as boolean);
    } as Readable['emit'];
  }

  #stopTapping(): void {
    const original = this.#original;
    if (original === undefined) return;
    this.#original = undefined;
    // Put back by assignment: deleting the property would turn the request object into a
    // slow dictionary for the rest of its life.
    this.#source.emit = original;
  }

  #ended(): CapturedBody {
    const chunks = this.#chunks;
    return chunks === null ? { kind: 'too-large', size: this.#declared ?? this.#seen } : { kind: 'whole', bytes: Buffer.concat(chunks, this.#seen) };
  }

  #cut(): CapturedBody {
    return { kind: 'cut', size: this.#seen };
  }

  #keep(chunk: unknown): void {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    this.#seen += bytes.length;
    if (this.#chunks === null) return;
    if (this.#seen <= this.#limit) {
      this.#chunks.push(bytes);
      return;
    }
    // Past the limit: no copy, but the bytes are still counted, for the size a body that ends
    // before the copy is asked for turns out to have.
    this.#chunks = null;
    // Someone waits for the copy: past the limit is all there is to know.
    if (this.#waiting !== undefined) this.#finish({ kind: 'too-large', size: this.#declared ?? null });
  }

  #finish(outcome: CapturedBody): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = outcome;
    this.#chunks = null;
    this.#stopTapping();
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.(outcome);
  }
}

/**
 * A request body that streams to its first attempt at once and can be sent again: what has
 * passed is kept, up to `limit` bytes, and each new reader gets it first, then what still
 * comes from the client. A gRPC call needs this rather than bufferBody: a bidirectional or
 * client-streaming call may not end its body until it has answers, so it cannot be read whole
 * before the first attempt. Readers in flight together (hedges) each get every byte; the client
 * is read no faster than the slowest of them. Once more than `limit` bytes have passed, no new
 * reader can be opened: the call is committed to the attempts it has (gRPC's own rule, A6).
 * While no reader is open (a retry's backoff), the client is not read.
 */
export class ReplayableBody {
  readonly #source: Readable;
  readonly #limit: number;
  readonly #kept: Buffer[] = [];
  #size = 0;
  #ended = false;
  #failed: Error | null = null;
  readonly #readers = new Set<PassThrough>();
  /** Readers whose buffer is full: the source waits for them. */
  readonly #full = new Set<PassThrough>();

  constructor(source: Readable, limit: number) {
    this.#source = source;
    this.#limit = limit;
    source.on('data', (chunk: Buffer) => this.#pass(chunk));
    source.on('end', () => {
      this.#ended = true;
      for (const reader of this.#readers) reader.end();
    });
    source.on('error', (error: Error) => {
      this.#failed = error;
      for (const reader of this.#readers) reader.destroy(error);
    });
  }

  /** True while every byte that has passed is kept: another reader may still be opened. */
  get replayable(): boolean {
    return this.#size <= this.#limit && this.#failed === null;
  }

  /** A new reader: everything kept so far, then the rest as it comes. Only while replayable. */
  open(): Readable {
    if (!this.replayable) throw new Error('the request body is no longer replayable');
    const reader = new PassThrough();
    for (const chunk of this.#kept) reader.write(chunk);
    if (this.#ended) {
      reader.end();
      return reader;
    }
    this.#readers.add(reader);
    reader.on('drain', () => {
      this.#full.delete(reader);
      if (this.#full.size === 0) this.#source.resume();
    });
    reader.on('close', () => {
      this.#readers.delete(reader);
      this.#full.delete(reader);
      if (this.#readers.size === 0) this.#source.pause();
      else if (this.#full.size === 0) this.#source.resume();
    });
    if (reader.writableNeedDrain) this.#waitFor(reader);
    else if (this.#full.size === 0) this.#source.resume();
    return reader;
  }

  #pass(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size <= this.#limit) this.#kept.push(chunk);
    else this.#kept.length = 0;
    for (const reader of this.#readers) if (!reader.write(chunk)) this.#waitFor(reader);
  }

  #waitFor(reader: PassThrough): void {
    this.#full.add(reader);
    this.#source.pause();
  }
}

/**
 * Reads what a streaming body sends until the next turn of the event loop, then calls `settled`
 * once: with the whole body as a Buffer when it ended by then within `limit` bytes, else with a
 * stream of what was read followed by the rest, as it comes. Whatever the body is, it is never
 * held back longer than that turn, so a call that streams both ways is not delayed. Past
 * `limit`, or when the body fails or `scope` ends first, it is handed on as a stream at
 * once, failures and all.
 */
export function readAhead(source: Readable, limit: number, scope: CallScope, settled: (body: Readable | Buffer) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  const finish = (body: Readable | Buffer): void => {
    if (done) return;
    done = true;
    clearImmediate(turn);
    source.off('data', onData);
    source.off('end', onEnd);
    source.off('error', onError);
    stopFollowing();
    settled(body);
  };
  const asStream = (): void => {
    source.pause();
    finish(chunks.length === 0 ? source : resume(chunks, source));
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    size += chunk.length;
    if (size > limit) asStream();
  };
  const onEnd = (): void => finish(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
  // The reader sees the failure on the stream it is given, which ends with it.
  const onError = (): void => finish(resume(chunks, source));
  source.on('data', onData);
  source.on('end', onEnd);
  source.on('error', onError);
  const stopFollowing = hasEnded(scope) ? noop : onScopeEnd(scope, asStream);
  const turn = setImmediate(asStream);
}

function noop(): void {}
