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

/** `sink` as a body sees it, with every chunk written to it also handed to `keep`. */
function teeSink(sink: BodySink, keep: (chunk: Buffer) => void): BodySink {
  return {
    write(chunk) {
      keep(chunk);
      return sink.write(chunk);
    },
    end(chunk) {
      if (chunk !== undefined) keep(chunk);
      return chunk === undefined ? sink.end() : sink.end(chunk);
    },
    addTrailers(trailers) {
      sink.addTrailers?.(trailers);
    },
    on(event, listener) {
      return sink.on(event, listener);
    },
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
  let told = false;
  const tell = (result: TeeEnd): void => {
    if (told) return;
    told = true;
    end(result);
  };
  return {
    async pipeTo(sink) {
      let chunks: Buffer[] | null = [];
      let size = 0;
      try {
        await body.pipeTo(
          teeSink(sink, (chunk) => {
            if (chunks === null) return;
            size += chunk.length;
            if (size > limit) chunks = null;
            else chunks.push(chunk);
          }),
        );
      } catch (error) {
        tell(cut);
        throw error;
      }
      tell(chunks === null ? tooLarge : { kind: 'whole', bytes: Buffer.concat(chunks, size) });
    },
    discard: () => {
      tell(cut);
      body.discard();
    },
  };
}
