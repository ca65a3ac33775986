import type { ResponseBody } from './request.ts';

/** The client response a body streams into (node:http's ServerResponse, which policies do not import). */
export type ResponseSink = Parameters<ResponseBody['pipeTo']>[0];

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

function chunkBytes(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  // A view, not a copy: the bytes are only copied once the whole body is known to fit.
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return undefined;
}

/** The sink as seen by the body, with every chunk written to it also handed to `keep`. */
function teeSink(sink: ResponseSink, keep: (chunk: Buffer) => void): ResponseSink {
  const tee = (method: 'write' | 'end') =>
    (...args: unknown[]): unknown => {
      const chunk = chunkBytes(args[0], args[1]);
      if (chunk !== undefined) keep(chunk);
      return Reflect.apply(sink[method], sink, args);
    };
  const write = tee('write');
  const end = tee('end');
  return new Proxy(sink, {
    get(target, property) {
      if (property === 'write') return write;
      if (property === 'end') return end;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
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
