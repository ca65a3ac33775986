import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';

/** A client response stand-in that collects what a response body writes to it. */
export function memorySink() {
  const chunks: Buffer[] = [];
  const writable = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  return {
    writable,
    /** The sink to hand to a body's pipeTo (Node's ServerResponse is a Writable). */
    sink: writable as unknown as ServerResponse,
    chunks,
    text: () => Buffer.concat(chunks).toString(),
  };
}
