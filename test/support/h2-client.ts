// A minimal HTTP/2 client for the tests: one request on a cleartext session with prior
// knowledge, read whole, with its head, body and trailers as they came.

import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

export interface H2Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** True when the head ended the stream (a Trailers-Only response). */
  readonly headEndedStream: boolean;
  readonly body: Buffer;
  readonly trailers: IncomingHttpHeaders | undefined;
}

/** Opens an h2c session to `url` (`http://host:port`). */
export function h2Session(url: string): ClientHttp2Session {
  const session = connect(url);
  // Errors end the requests on it, which report them; the session's own are not the test's.
  session.on('error', () => undefined);
  return session;
}

/** Sends one request on `session` and reads its answer whole; rejects if the stream is reset. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': '/', ...headers }, { endStream: body === undefined });
    let head: IncomingHttpHeaders | undefined;
    let headEndedStream = false;
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (received, flags) => {
      head = received;
      headEndedStream = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('close', () => {
      if (head === undefined) {
        reject(new Error(`stream closed without a response (RST_STREAM code ${stream.rstCode})`));
        return;
      }
      resolve({ status: Number(head[':status']), headers: head, headEndedStream, body: Buffer.concat(chunks), trailers });
    });
    if (body !== undefined) stream.end(body);
  });
}
