import type { ResponseBody } from '../../exchange/request.ts';

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

/**
 * `body`, streamed as before, with a copy of its bytes kept on the side: once it has ended
 * whole, `complete` gets them. Past `limit` bytes the copy is dropped and streaming goes on
 * untouched; a body that fails midway is never completed.
 */
export function teeBody(body: ResponseBody, limit: number, complete: (bytes: Buffer) => void): ResponseBody {
  return {
    async pipeTo(sink) {
      let chunks: Buffer[] | null = [];
      let size = 0;
      await body.pipeTo(
        teeSink(sink, (chunk) => {
          if (chunks === null) return;
          size += chunk.length;
          if (size > limit) chunks = null;
          else chunks.push(chunk);
        }),
      );
      if (chunks !== null) complete(Buffer.concat(chunks, size));
    },
    discard: () => body.discard(),
  };
}
