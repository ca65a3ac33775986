import type { BodySink, ResponseBody } from './request.ts';

/** The client response a body streams into. */
export type ResponseSink = BodySink;

/** False for the statuses that never carry a body, so they get no Content-Length. */
export function statusHasBody(status: number): boolean {
  return status !== 204 && status !== 304;
}

/** A body held whole in memory: a stored or configured reply, small by construction. */
export function bufferedBody(bytes: Buffer | null): ResponseBody {
  return {
    pipeTo(sink) {
      if (bytes === null || bytes.length === 0) sink.end();
      else sink.end(bytes);
      return Promise.resolve();
    },
    discard: () => undefined,
  };
}

/**
 * A gRPC response body held in memory: `message` as one length-prefixed gRPC message, then
 * `trailers`. Made once and streamed as often as asked.
 */
export function grpcMessageBody(message: Buffer, trailers: Record<string, string>): ResponseBody {
  const framed = Buffer.alloc(5 + message.length);
  // Byte 0: not compressed; bytes 1-4: the message's length, big-endian.
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return {
    pipeTo(sink) {
      sink.write(framed);
      sink.addTrailers?.(trailers);
      sink.end();
      return Promise.resolve();
    },
    discard: () => undefined,
  };
}

/** How a teed body ended: whole (with the copy kept), or not. */
export type TeeEnd =
  | { readonly kind: 'whole'; readonly bytes: Buffer }
  /** It streamed whole, but past the limit: no copy was kept. */
  | { readonly kind: 'too-large' }
  /** It failed midway, or was discarded before or while it streamed. */
  | { readonly kind: 'cut' };

const tooLarge: TeeEnd = { kind: 'too-large' };
const cut: TeeEnd = { kind: 'cut' };

/**
 * `body`, streamed as before, with a copy of its bytes kept on the side; `end` is told once how
 * it ended: whole with the copy, whole but past `limit` bytes (the copy dropped, streaming
 * untouched), or cut short.
 */
export function teeBody(body: ResponseBody, limit: number, end: (result: TeeEnd) => void): ResponseBody {
  return new TeedBody(body, limit, end);
}

/**
 * The teed body is also the sink its source streams into, passing each chunk on to the real
 * sink: one object per response rather than a sink and a closure for each of its calls.
 */
class TeedBody implements ResponseBody, BodySink {
  readonly #body: ResponseBody;
  readonly #limit: number;
  /**
   * Null once told. The teed body may outlive its exchange in the old generation, where the
   * scavenger treats it as live until the next full collection: held on to, this callback
   * (the record it completes, the response and its headers) would be promoted with it.
   */
  #end: ((result: TeeEnd) => void) | null;
  #sink: BodySink | null = null;
  /** The copy so far; null once it is past the limit, or once told. */
  #chunks: Buffer[] | null = [];
  #size = 0;

  constructor(body: ResponseBody, limit: number, end: (result: TeeEnd) => void) {
    this.#body = body;
    this.#limit = limit;
    this.#end = end;
  }

  pipeTo(sink: BodySink): Promise<void> {
    this.#sink = sink;
    this.#chunks = [];
    this.#size = 0;
    let piped: Promise<void>;
    try {
      piped = this.#body.pipeTo(this);
    } catch (error) {
      piped = Promise.reject(error as Error);
    }
    return piped.then(
      () => {
        const chunks = this.#chunks;
        this.#tell(chunks === null ? tooLarge : { kind: 'whole', bytes: Buffer.concat(chunks, this.#size) });
      },
      (error: unknown) => {
        this.#tell(cut);
        throw error;
      },
    );
  }

  discard(): void {
    this.#tell(cut);
    this.#body.discard();
  }

  write(chunk: Buffer): boolean {
    this.#keep(chunk);
    return this.#sink!.write(chunk);
  }

  end(chunk?: Buffer): unknown {
    if (chunk === undefined) return this.#sink!.end();
    this.#keep(chunk);
    return this.#sink!.end(chunk);
  }

  addTrailers(trailers: Record<string, string | string[]>): void {
    this.#sink!.addTrailers?.(trailers);
  }

  on(event: 'drain', listener: () => void): unknown {
    return this.#sink!.on(event, listener);
  }

  off(event: 'drain', listener: () => void): unknown {
    return this.#sink!.off(event, listener);
  }

  #keep(chunk: Buffer): void {
    if (this.#chunks === null) return;
    this.#size += chunk.length;
    if (this.#size > this.#limit) this.#chunks = null;
    else this.#chunks.push(chunk);
  }

  #tell(result: TeeEnd): void {
    const end = this.#end;
    if (end === null) return;
    this.#end = null;
    this.#chunks = null;
    end(result);
  }
}
